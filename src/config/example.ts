/**
 * The commented example `centra-pxe config example` writes: a starting point for a real network,
 * every key a new operator should look at, each with why. It must stay valid with no warnings
 * (config.test.ts parses it), so an operator who changes only the addresses has a working file.
 */
export const EXAMPLE_CONFIG = `# centra-pxe config (PRODUCT.md §2). Check it with: centra-pxe validate FILE
# Every key left out takes its default; \`centra-pxe config show --config FILE\` prints them all.

# The one interface DHCP answers on. In dhcp.mode server it must carry serverAddress, in the
# network dhcp.subnet/netmask declares, or DHCP refuses to start (like ISC dhcpd's
# "No subnet declaration for eth0").
interface: eth0
# This server's address on that interface: next-server, TFTP and HTTP address handed to clients.
serverAddress: 10.0.100.10
# Bootloaders (ipxe/), images (images/) and the embedded database. \`centra-pxe init\` creates it.
stateDir: /var/lib/pxe-boot

dhcp:
  # server: hand out addresses (stop the old dhcpd first: two DHCP servers on a link fight).
  # proxy: boot information only, beside the site's own DHCP server.  off: no DHCP at all.
  mode: server
  subnet: 10.0.100.0
  netmask: 255.255.255.0
  # The dynamic pool: inside the subnet, without the network, broadcast, router or server address.
  range: { start: 10.0.100.100, end: 10.0.100.200 }
  router: 10.0.100.1
  dns: [10.0.100.1]
  leaseTime: 1h
  # The giaddr of each DHCP relay agent trusted to forward requests (none: relayed packets dropped).
  relays: []

# PXE firmware asks TFTP on port 69; iPXE then fetches everything else over HTTP.
tftp: { port: 69 }
# Port 80 is what iPXE scripts and UEFI HTTP boot expect; the API (/api/v1) is served here too.
http: { port: 80 }

boot:
  # Unknown machines see a menu this long, then the default action.
  menuTimeout: 10s
  console: [tty0, "ttyS0,115200n8"]

# Profiles name an image added with \`centra-pxe images add NAME --kernel F --initrd F\`.
profiles:
  control-plane: { image: nixos, cmdline: "" }
  worker: { image: nixos }
  all-in-one: { image: nixos }

# Machines known in advance, keyed by MAC (any notation). A fixed ipAddress lies outside the pool.
# Machines can also be added at run time through the API or \`centra-pxe nodes add\`.
nodes:
  "52:54:00:12:34:56": { profile: control-plane, hostname: control-plane-01, ipAddress: 10.0.100.50 }
  # With its BMC the server powers it and sets its boot device (\`nodes provision NODE --power\`); the
  # password only as a file on the server (first line). Redfish: type: redfish, and for a self-signed
  # certificate fingerprint: <its sha256>.
  #   bmc: { type: ipmi, address: 10.0.200.50, username: admin, passwordFile: /etc/centra-pxe/bmc-password }

# BMC requests: each gives up after timeout, tried attempts times when nothing answered; the power
# state of every node with a BMC is read every pollInterval, concurrency BMCs at a time.
# bmc: { timeout: 10s, attempts: 2, pollInterval: 60s, concurrency: 8 }
`;
