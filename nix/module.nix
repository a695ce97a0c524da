# services.centra-pxe-server: the seed's NixOS module options, unchanged, now served by one daemon.
#
#   imports = [ ./nix/module.nix ];
#   services.centra-pxe-server = {
#     enable = true; interface = "eth0"; serverAddress = "10.0.100.10";
#     dhcp = { subnet = "10.0.100.0"; netmask = "255.255.255.0"; broadcast = "10.0.100.255";
#              range = { start = "10.0.100.100"; end = "10.0.100.200"; }; router = "10.0.100.1"; };
#     nodes."52:54:00:12:34:56" = { profile = "control-plane"; hostname = "control-plane-01"; ipAddress = "10.0.100.50"; };
#     settings = { http.port = 8080; provisioning.timeout = "45m"; };   # anything else of docs/PRODUCT.md §2
#   };
#
# The typed options render into /etc/centra-pxe/config.yaml (JSON, which is YAML) with `settings`
# merged over them; `nixos-rebuild switch` then reloads the daemon (SIGHUP: every part or none)
# instead of restarting it, unless what changed needs a restart (interface, ports, DHCP mode).
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types;
  cfg = config.services.centra-pxe-server;

  nullOrStr = description: mkOption { type = types.nullOr types.str; default = null; inherit description; };
  withoutNulls = lib.filterAttrs (_: value: value != null);

  # The keys the seed's options own; `settings` setting them too would be two truths.
  ownedKeys = [ "interface" "serverAddress" "nodes" ];
  ownedDhcpKeys = [ "subnet" "netmask" "broadcast" "range" "router" ];

  typed = {
    inherit (cfg) interface serverAddress;
    stateDir = "/var/lib/centra-pxe";
    dhcp = withoutNulls {
      inherit (cfg.dhcp) subnet netmask broadcast router;
      range = { inherit (cfg.dhcp.range) start end; };
    };
    nodes = lib.mapAttrs (_mac: node: withoutNulls { inherit (node) profile hostname ipAddress; }) cfg.nodes;
  };
  rendered = lib.recursiveUpdate typed cfg.settings;
  configText = builtins.toJSON rendered;

  setting = path: default: lib.attrByPath path default rendered;
  dhcpMode = setting [ "dhcp" "mode" ] "server";
  stateDir = rendered.stateDir;
  defaultStateDir = stateDir == "/var/lib/centra-pxe";
  configPath = "/etc/centra-pxe/config.yaml";
  cli = "${cfg.package}/bin/centra-pxe";
in
{
  options.services.centra-pxe-server = {
    enable = mkEnableOption "the Centra PXE network-boot server (DHCP, TFTP, HTTP and iPXE in one daemon)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      description = "The centra-pxe package (nix/package.nix).";
    };

    interface = mkOption {
      type = types.str;
      default = "eth0";
      description = "The only interface DHCP answers on.";
    };

    serverAddress = mkOption {
      type = types.str;
      default = "10.0.100.10";
      description = "This server's address on that interface (next-server, the iPXE scripts' URLs).";
    };

    dhcp = {
      subnet = mkOption { type = types.str; default = "10.0.100.0"; description = "The provisioning subnet."; };
      netmask = mkOption { type = types.str; default = "255.255.255.0"; description = "Its netmask."; };
      broadcast = nullOrStr "Its broadcast address (default: derived from subnet and netmask).";
      range = {
        start = mkOption { type = types.str; default = "10.0.100.100"; description = "First dynamic address."; };
        end = mkOption { type = types.str; default = "10.0.100.200"; description = "Last dynamic address."; };
      };
      router = nullOrStr "The default gateway handed out (DHCP option 3).";
    };

    nodes = mkOption {
      default = { };
      description = "Known machines by MAC address: their profile, and optionally a fixed hostname and address.";
      type = types.attrsOf (types.submodule {
        options = {
          profile = mkOption { type = types.str; description = "The profile (settings.profiles) it boots."; };
          hostname = nullOrStr "Its hostname (DHCP option 12).";
          ipAddress = nullOrStr "Its reserved address.";
        };
      });
    };

    settings = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      description = ''
        The rest of Centra PXE's config (docs/PRODUCT.md §2), merged over what the options above
        render: profiles, http, tftp, provisioning, dhcp.mode, dhcp.leaseTime, stateDir, …
      '';
    };

    bootloaders = mkOption {
      type = types.path;
      default = "${pkgs.ipxe}";
      description = "Where `centra-pxe init` copies undionly.kpxe and ipxe.efi from before each start.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open DHCP (67, and 4011 in proxy mode), TFTP (69)/udp and HTTP/tcp on the interface.";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.all (key: !(cfg.settings ? ${key})) ownedKeys
          && lib.all (key: !((cfg.settings.dhcp or { }) ? ${key})) ownedDhcpKeys;
        message = "services.centra-pxe-server.settings must not set ${lib.concatStringsSep ", " ownedKeys} "
          + "or dhcp.{${lib.concatStringsSep "," ownedDhcpKeys}}: use the options of the same name.";
      }
    ];

    environment.etc."centra-pxe/config.yaml".text = configText;
    environment.systemPackages = [ cfg.package ];

    users.users.centra-pxe = { isSystemUser = true; group = "centra-pxe"; home = stateDir; };
    users.groups.centra-pxe = { };

    # A stateDir outside /var/lib/centra-pxe (the seed's /var/lib/pxe-boot, say) is created here
    # and opened in the sandbox below; the default one is systemd's StateDirectory.
    systemd.tmpfiles.rules = lib.optional (!defaultStateDir) "d ${stateDir} 0750 centra-pxe centra-pxe - -";

    systemd.services.centra-pxe = {
      description = "Centra PXE network-boot server";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # A changed config is a SIGHUP (applied by every part or none); what no reload can change is a restart.
      reloadTriggers = [ configText ];
      restartTriggers = [
        (builtins.toJSON {
          inherit (cfg) interface package;
          mode = dhcpMode;
          ports = [ (setting [ "dhcp" "port" ] 67) (setting [ "tftp" "port" ] 69) (setting [ "http" "port" ] 80) ];
          inherit stateDir;
        })
      ];
      serviceConfig = {
        Type = "notify";
        ExecStartPre = "${cli} init --config ${configPath} --bootloaders ${cfg.bootloaders}";
        ExecStart = "${cli} serve --config ${configPath}";
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        Restart = "on-failure";
        RestartSec = "2s";
        User = "centra-pxe";
        Group = "centra-pxe";
        StateDirectory = mkIf defaultStateDir "centra-pxe";
        StateDirectoryMode = "0750";
        ReadWritePaths = mkIf (!defaultStateDir) [ stateDir ];
        # Ports 67/69/80 (bind), SO_BINDTODEVICE on the DHCP socket (CAP_NET_RAW before Linux 5.7),
        # the ARP entry for a unicast OFFER to a client without an address (SIOCSARP: CAP_NET_ADMIN).
        AmbientCapabilities = [ "CAP_NET_BIND_SERVICE" "CAP_NET_RAW" "CAP_NET_ADMIN" ];
        CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" "CAP_NET_RAW" "CAP_NET_ADMIN" ];
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" "AF_NETLINK" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" ];
        UMask = "0027";
      };
    };

    networking.firewall.interfaces.${cfg.interface} = mkIf cfg.openFirewall {
      allowedUDPPorts =
        lib.optional (dhcpMode != "off") (setting [ "dhcp" "port" ] 67)
        ++ lib.optional (dhcpMode == "proxy") 4011
        ++ lib.optional (setting [ "tftp" "enabled" ] true) (setting [ "tftp" "port" ] 69);
      allowedTCPPorts = [ (setting [ "http" "port" ] 80) ];
    };
  };
}
