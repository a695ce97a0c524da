# The seed's documented NixOS configuration, word for word (its README, "Quick Start").
{
  services.centra-pxe-server = {
    enable = true;
    interface = "eth0"; # Your network interface
    serverAddress = "10.0.100.10"; # PXE server IP

    dhcp = {
      subnet = "10.0.100.0";
      netmask = "255.255.255.0";
      broadcast = "10.0.100.255";
      range = {
        start = "10.0.100.100";
        end = "10.0.100.200";
      };
      router = "10.0.100.1";
    };

    # Optional: Define known nodes with MAC addresses
    nodes = {
      "52:54:00:12:34:56" = {
        profile = "control-plane";
        hostname = "control-plane-01";
        ipAddress = "10.0.100.50";
      };
    };
  };
}
