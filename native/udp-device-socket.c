/*
 * A UDP socket bound to one network interface (SO_BINDTODEVICE), handed to Node as a file
 * descriptor. Node's dgram cannot bind to a device nor tell which interface a datagram came in on,
 * and a DHCP server answering on the wrong network is the worst bug it can have (issue 3), so the
 * kernel does the filtering: a socket bound to a device only receives what arrived on that device
 * and sends (broadcasts included) only out of it.
 *
 * Also sets an ARP entry (SIOCSARP) so a reply can be unicast to a client that has no address yet
 * (RFC 2131 §4.1: OFFER/ACK go to chaddr + yiaddr when the broadcast flag is clear).
 */
#include "common.h"

#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>

/* openDeviceSocket(interface: string, port: number, receiveBufferBytes: number): number (fd) */
static napi_value open_device_socket(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 3, argc, argv);
  if (argc < 2) return throw_usage(env, "openDeviceSocket(interface, port[, receiveBufferBytes])");
  char device[IFNAMSIZ + 1];
  int length = read_string(env, argv[0], device, sizeof device);
  if (length <= 0 || length >= IFNAMSIZ) return throw_usage(env, "interface must be a name of 1-15 characters");
  int32_t port = 0;
  if (napi_get_value_int32(env, argv[1], &port) != napi_ok || port < 0 || port > 65535) return throw_usage(env, "port must be 0-65535");
  int32_t receive_buffer = 0;
  if (argc >= 3) napi_get_value_int32(env, argv[2], &receive_buffer);

  int fd = open_udp_socket();
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1;
  /* Several sockets on port 67, one per interface, must coexist (and with a proxy on 4011). */
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) return close_and_throw(env, fd, "setsockopt(SO_REUSEADDR)");
  if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0) return close_and_throw(env, fd, "setsockopt(SO_BROADCAST)");
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, (socklen_t)strlen(device)) < 0) {
    return close_and_throw(env, fd, "setsockopt(SO_BINDTODEVICE) (needs CAP_NET_RAW; is the interface name right?)");
  }
  /* A burst of DISCOVERs (a rack powering on) must queue while the event loop is busy. */
  set_buffer_size(fd, SO_RCVBUFFORCE, SO_RCVBUF, receive_buffer);
  struct sockaddr_in address;
  ipv4_address("0.0.0.0", (uint16_t)port, &address);
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) return close_and_throw(env, fd, "bind");
  return int_value(env, fd);
}

/* setArpEntry(interface: string, ipv4: string, mac: Buffer(6)): void */
static napi_value set_arp_entry(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 3, argc, argv);
  if (argc < 3) return throw_usage(env, "setArpEntry(interface, ipv4, mac)");
  char device[IFNAMSIZ + 1];
  char ip[32];
  int length = read_string(env, argv[0], device, sizeof device);
  if (length <= 0 || length >= IFNAMSIZ || read_string(env, argv[1], ip, sizeof ip) <= 0) return throw_usage(env, "bad interface or address");
  void *mac = NULL;
  size_t mac_length = 0;
  if (napi_get_buffer_info(env, argv[2], &mac, &mac_length) != napi_ok || mac_length != 6) return throw_usage(env, "mac must be a 6-byte Buffer");
  struct arpreq request;
  memset(&request, 0, sizeof request);
  if (!ipv4_address(ip, 0, (struct sockaddr_in *)&request.arp_pa)) return throw_usage(env, "bad IPv4 address");
  request.arp_ha.sa_family = ARPHRD_ETHER;
  memcpy(request.arp_ha.sa_data, mac, 6);
  request.arp_flags = ATF_COM;
  /* length was checked above (< IFNAMSIZ) and request is zeroed, so the name stays terminated */
  memcpy(request.arp_dev, device, (size_t)length);
  int fd = open_udp_socket();
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (ioctl(fd, SIOCSARP, &request) < 0) return close_and_throw(env, fd, "ioctl(SIOCSARP)");
  close(fd);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      EXPORTED_FUNCTION("openDeviceSocket", open_device_socket),
      EXPORTED_FUNCTION("setArpEntry", set_arp_entry),
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
