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
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, err == EPERM || err == EACCES ? "EPERM" : "ESOCKET", message);
  return NULL;
}

static int read_string(napi_env env, napi_value value, char *out, size_t size) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, out, size, &length) != napi_ok) return -1;
  return (int)length;
}

/* openDeviceSocket(interface: string, port: number, receiveBufferBytes: number): number (fd) */
static napi_value open_device_socket(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "openDeviceSocket(interface, port[, receiveBufferBytes])");
    return NULL;
  }
  char device[IFNAMSIZ + 1];
  int length = read_string(env, argv[0], device, sizeof device);
  if (length <= 0 || length >= IFNAMSIZ) {
    napi_throw_type_error(env, NULL, "interface must be a name of 1-15 characters");
    return NULL;
  }
  int32_t port = 0;
  if (napi_get_value_int32(env, argv[1], &port) != napi_ok || port < 0 || port > 65535) {
    napi_throw_type_error(env, NULL, "port must be 0-65535");
    return NULL;
  }
  int32_t receive_buffer = 0;
  if (argc >= 3) napi_get_value_int32(env, argv[2], &receive_buffer);

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1;
  /* Several sockets on port 67, one per interface, must coexist (and with a proxy on 4011). */
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) goto fail_reuse;
  if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0) goto fail_broadcast;
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, (socklen_t)strlen(device)) < 0) goto fail_device;
  if (receive_buffer > 0) {
    /* A burst of DISCOVERs (a rack powering on) must queue while the event loop is busy. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer, sizeof receive_buffer) < 0) {
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
  }
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons((uint16_t)port);
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) goto fail_bind;

  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;

  int err;
fail_reuse:
  err = errno; close(fd); return throw_errno(env, "setsockopt(SO_REUSEADDR)", err);
fail_broadcast:
  err = errno; close(fd); return throw_errno(env, "setsockopt(SO_BROADCAST)", err);
fail_device:
  err = errno; close(fd); return throw_errno(env, "setsockopt(SO_BINDTODEVICE) (needs CAP_NET_RAW; is the interface name right?)", err);
fail_bind:
  err = errno; close(fd); return throw_errno(env, "bind", err);
}

/* setArpEntry(interface: string, ipv4: string, mac: Buffer(6)): void */
static napi_value set_arp_entry(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "setArpEntry(interface, ipv4, mac)");
    return NULL;
  }
  char device[IFNAMSIZ + 1];
  char ip[32];
  int length = read_string(env, argv[0], device, sizeof device);
  if (length <= 0 || length >= IFNAMSIZ || read_string(env, argv[1], ip, sizeof ip) <= 0) {
    napi_throw_type_error(env, NULL, "bad interface or address");
    return NULL;
  }
  void *mac = NULL;
  size_t mac_length = 0;
  if (napi_get_buffer_info(env, argv[2], &mac, &mac_length) != napi_ok || mac_length != 6) {
    napi_throw_type_error(env, NULL, "mac must be a 6-byte Buffer");
    return NULL;
  }
  struct arpreq request;
  memset(&request, 0, sizeof request);
  struct sockaddr_in *protocol = (struct sockaddr_in *)&request.arp_pa;
  protocol->sin_family = AF_INET;
  if (inet_pton(AF_INET, ip, &protocol->sin_addr) != 1) {
    napi_throw_type_error(env, NULL, "bad IPv4 address");
    return NULL;
  }
  request.arp_ha.sa_family = ARPHRD_ETHER;
  memcpy(request.arp_ha.sa_data, mac, 6);
  request.arp_flags = ATF_COM;
  /* length was checked above (< IFNAMSIZ) and request is zeroed, so the name stays terminated */
  memcpy(request.arp_dev, device, (size_t)length);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int rc = ioctl(fd, SIOCSARP, &request);
  int err = errno;
  close(fd);
  if (rc < 0) return throw_errno(env, "ioctl(SIOCSARP)", err);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"openDeviceSocket", NULL, open_device_socket, NULL, NULL, NULL, napi_default, NULL},
      {"setArpEntry", NULL, set_arp_entry, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
