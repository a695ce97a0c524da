/*
 * A UDP socket bound to one network interface (SO_BINDTODEVICE), handed to Node as a file
 * descriptor. Node's dgram cannot bind to a device nor tell which interface a datagram came in on,
 * and a DHCP server answering on the wrong network is the worst bug it can have (issue 3), so the
 * kernel does the filtering: a socket bound to a device only receives what arrived on that device
 * and sends (broadcasts included) only out of it.
 *
 * Also sets an ARP entry (SIOCSARP) so a reply can be unicast to a client that has no address yet
 * (RFC 2131 §4.1: OFFER/ACK go to chaddr + yiaddr when the broadcast flag is clear).
 *
 * And sends replies off the event loop (sendBatch): a profile of the server under perfdhcp spent a
 * third of its main thread in dgram's send, nearly all of it the kernel carrying each reply through
 * the stack (the veth peer's receive path included). A turn's replies are copied into one block
 * and sent with sendmmsg on libuv's thread pool, so that work runs on the other core while the
 * loop reads and handles the next requests.
 */
#include "common.h"

#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

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

/* Datagrams per sendmmsg call; a longer batch is sent in turns. */
#define SEND_CHUNK 64
/* How long a full send buffer may hold a batch up before its remaining replies are dropped. */
#define SEND_WAIT_MS 200

/* One batch of replies: copied out of JavaScript, so no Buffer needs to outlive the call. */
typedef struct {
  napi_async_work work;
  napi_ref callback;
  int fd;
  uint32_t count;
  uint32_t sent;
  uint32_t failed; /* datagrams that could not be sent */
  int error;       /* errno of the first failure, 0 if none */
  struct sockaddr_in *destinations;
  struct iovec *iovs;
  uint8_t *data;
} send_batch;

static void free_batch(send_batch *batch) {
  free(batch->destinations);
  free(batch->iovs);
  free(batch->data);
  free(batch);
}

/* On a pool thread: sendmmsg in chunks; a full send buffer is waited for, briefly. */
static void execute_send(napi_env env, void *data) {
  (void)env;
  send_batch *batch = data;
  struct mmsghdr messages[SEND_CHUNK];
  while (batch->sent < batch->count) {
    uint32_t chunk = batch->count - batch->sent;
    if (chunk > SEND_CHUNK) chunk = SEND_CHUNK;
    memset(messages, 0, sizeof(struct mmsghdr) * chunk);
    for (uint32_t i = 0; i < chunk; i++) {
      uint32_t k = batch->sent + i;
      messages[i].msg_hdr.msg_name = &batch->destinations[k];
      messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
      messages[i].msg_hdr.msg_iov = &batch->iovs[k];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
    int sent;
    do sent = sendmmsg(batch->fd, messages, chunk, 0);
    while (sent < 0 && errno == EINTR);
    if (sent > 0) {
      batch->sent += (uint32_t)sent;
      continue;
    }
    int err = sent < 0 ? errno : EAGAIN;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      struct pollfd writable = {.fd = batch->fd, .events = POLLOUT, .revents = 0};
      if (poll(&writable, 1, SEND_WAIT_MS) > 0) continue;
    }
    /* This datagram cannot go (a refused destination, or the buffer stayed full): skip it, as a
       lost datagram; the client retransmits. */
    if (!batch->error) batch->error = err;
    batch->failed++;
    batch->sent++;
  }
}

/* Back on the loop: done(failed, errno), failed = -1 when the work was cancelled. */
static void complete_send(napi_env env, napi_status status, void *data) {
  send_batch *batch = data;
  napi_value callback, global, argv[2];
  if (napi_get_reference_value(env, batch->callback, &callback) == napi_ok && callback != NULL) {
    napi_get_global(env, &global);
    napi_create_int32(env, status == napi_ok ? (int32_t)batch->failed : -1, &argv[0]);
    napi_create_int32(env, batch->error, &argv[1]);
    napi_call_function(env, global, callback, 2, argv, NULL);
  }
  napi_delete_reference(env, batch->callback);
  napi_delete_async_work(env, batch->work);
  free_batch(batch);
}

/*
 * sendBatch(fd: number, datagrams: Buffer[], destinations: Uint32Array (address, port per
 * datagram), done: (failed, errno) => void): void. The fd stays open until `done` is called: the
 * caller closes its socket only after every batch came back.
 */
static napi_value send_batch_call(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 4, argc, argv);
  if (argc < 4) return throw_usage(env, "sendBatch(fd, datagrams, destinations, done)");
  int32_t fd = -1;
  uint32_t count = 0;
  bool is_array = false;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return throw_usage(env, "fd must be a descriptor");
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) return throw_usage(env, "datagrams must be an array");
  napi_get_array_length(env, argv[1], &count);
  napi_typedarray_type type;
  size_t pairs = 0;
  void *words = NULL;
  if (napi_get_typedarray_info(env, argv[2], &type, &pairs, &words, NULL, NULL) != napi_ok || type != napi_uint32_array || pairs != 2 * (size_t)count) {
    return throw_usage(env, "destinations must be a Uint32Array of (address, port) per datagram");
  }
  napi_valuetype callback_type;
  if (napi_typeof(env, argv[3], &callback_type) != napi_ok || callback_type != napi_function) return throw_usage(env, "done must be a function");

  send_batch *batch = calloc(1, sizeof *batch);
  if (!batch) return throw_errno(env, "sendBatch", ENOMEM);
  batch->fd = fd;
  batch->count = count;
  batch->destinations = calloc(count ? count : 1, sizeof *batch->destinations);
  batch->iovs = calloc(count ? count : 1, sizeof *batch->iovs);
  size_t total = 0;
  void *bytes[count ? count : 1];
  size_t lengths[count ? count : 1];
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    if (napi_get_element(env, argv[1], i, &element) != napi_ok || napi_get_buffer_info(env, element, &bytes[i], &lengths[i]) != napi_ok) {
      free_batch(batch);
      return throw_usage(env, "datagrams must be Buffers");
    }
    total += lengths[i];
  }
  batch->data = malloc(total ? total : 1);
  if (!batch->destinations || !batch->iovs || !batch->data) {
    free_batch(batch);
    return throw_errno(env, "sendBatch", ENOMEM);
  }
  const uint32_t *destination = words;
  size_t offset = 0;
  for (uint32_t i = 0; i < count; i++) {
    memcpy(batch->data + offset, bytes[i], lengths[i]);
    batch->iovs[i].iov_base = batch->data + offset;
    batch->iovs[i].iov_len = lengths[i];
    offset += lengths[i];
    batch->destinations[i].sin_family = AF_INET;
    batch->destinations[i].sin_addr.s_addr = htonl(destination[2 * i]);
    batch->destinations[i].sin_port = htons((uint16_t)destination[2 * i + 1]);
  }
  napi_value name;
  napi_create_string_utf8(env, "centra-dhcp-send", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[3], 1, &batch->callback) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute_send, complete_send, batch, &batch->work) != napi_ok ||
      napi_queue_async_work(env, batch->work) != napi_ok) {
    free_batch(batch);
    return throw_errno(env, "sendBatch", EIO);
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      EXPORTED_FUNCTION("openDeviceSocket", open_device_socket),
      EXPORTED_FUNCTION("setArpEntry", set_arp_entry),
      EXPORTED_FUNCTION("sendBatch", send_batch_call),
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
