# The module on a real NixOS, for machines with nixpkgs (not run by this repository's CI, which has
# no nixpkgs; test/deploy/nix-module.test.ts evaluates the module against nix/tests/stub-lib.nix):
#
#   nix-build nix/tests/module.nix
#
# A server VM configured with the seed's options, a client VM on the same VLAN: the client gets its
# reserved address from DHCP, a bootloader over TFTP and /health over HTTP; a reload keeps serving.
{ pkgs ? import <nixpkgs> { } }:

pkgs.testers.runNixOSTest {
  name = "centra-pxe-server";

  nodes.server = { ... }: {
    imports = [ ../module.nix ];
    virtualisation.vlans = [ 1 ];
    networking.interfaces.eth1.ipv4.addresses = [ { address = "10.0.100.10"; prefixLength = 24; } ];
    services.centra-pxe-server = {
      enable = true;
      interface = "eth1";
      serverAddress = "10.0.100.10";
      openFirewall = true;
      dhcp = {
        subnet = "10.0.100.0";
        netmask = "255.255.255.0";
        broadcast = "10.0.100.255";
        range = { start = "10.0.100.100"; end = "10.0.100.200"; };
        router = "10.0.100.1";
      };
      nodes."52:54:00:12:34:56" = { profile = "control-plane"; hostname = "control-plane-01"; ipAddress = "10.0.100.50"; };
    };
  };

  nodes.client = { ... }: {
    virtualisation.vlans = [ 1 ];
    networking.useDHCP = false;
    networking.interfaces.eth1.macAddress = "52:54:00:12:34:56";
    environment.systemPackages = [ pkgs.busybox pkgs.curl pkgs.tftp-hpa ];
  };

  testScript = ''
    start_all()
    server.wait_for_unit("centra-pxe.service")
    # Type=notify: the unit is active only once every part serves.
    server.succeed("systemctl show -p Type --value centra-pxe | grep -x notify")
    client.wait_for_unit("multi-user.target")
    client.succeed("udhcpc -i eth1 -n -q -f -s /bin/true 2>&1 | grep 'lease of 10.0.100.50 obtained'")
    client.succeed("ip addr add 10.0.100.50/24 dev eth1")
    client.succeed("curl -sf http://10.0.100.10/health")
    client.succeed("cd /tmp && tftp 10.0.100.10 -c get undionly.kpxe && test -s undionly.kpxe")
    server.succeed("systemctl reload centra-pxe")
    server.wait_until_succeeds("journalctl -u centra-pxe | grep 'SIGHUP: config reloaded'")
    client.succeed("curl -sf http://10.0.100.10/health")
  '';
}
