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
 * Receiving (watchDatagrams): dgram reads one datagram per recvmsg and gives each a fresh 64 KiB
 * allocation, a Buffer, a sender object with its address printed by inet_ntop, and an event. Past
 * saturation most of what arrives is DISCOVERs the server sheds, so that per-datagram cost was
 * most of the work spent on them. Here a uv_poll on the event loop reads up to 64 datagrams per
 * recvmmsg into one block and hands JavaScript the block and a table of (offset, length, sender)
 * per datagram: one call and two allocations per batch.
 *
 * Sending (sendBatch): a turn's replies go out in one sendmmsg, on the event loop while the send
 * buffer takes them. Handing every batch to libuv's thread pool, as this did first, cost a thread
 * wakeup and a completion per batch, and on a 2-CPU machine shared with the load generator that
 * CPU is not spare: measured with perfdhcp, the pool's threads took ~15 % of a CPU for nothing
 * the kernel needed. Only what the buffer cannot take now is copied and finished on the pool,
 * which may wait for room (poll) where the loop must not.
 */
#include "common.h"

#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <uv.h>

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
  struct mmsghdr *messages;
  struct sockaddr_in *destinations;
  struct iovec *iovs;
  uint8_t *data;
} send_batch;

static void free_batch(send_batch *batch) {
  free(batch->messages);
  free(batch->destinations);
  free(batch->iovs);
  free(batch->data);
  free(batch);
}

/* sendmmsg of `messages[0..count)` now, never waiting; returns how many left, failed ones skipped
 * (counted in *failed, the first errno in *error); stops early only on a full send buffer. */
static uint32_t send_now(int fd, struct mmsghdr *messages, uint32_t count, uint32_t *failed, int *error) {
  uint32_t done = 0;
  while (done < count) {
    uint32_t chunk = count - done;
    if (chunk > SEND_CHUNK) chunk = SEND_CHUNK;
    int sent;
    do sent = sendmmsg(fd, messages + done, chunk, MSG_DONTWAIT);
    while (sent < 0 && errno == EINTR);
    if (sent > 0) {
      done += (uint32_t)sent;
      continue;
    }
    int err = sent < 0 ? errno : EAGAIN;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) break;
    /* This datagram cannot go (a refused destination): skip it, as a loss on the wire. */
    if (!*error) *error = err;
    (*failed)++;
    done++;
  }
  return done;
}

static void call_done(napi_env env, napi_value callback, int32_t failed, int error) {
  napi_value global, argv[2];
  napi_get_global(env, &global);
  napi_create_int32(env, failed, &argv[0]);
  napi_create_int32(env, error, &argv[1]);
  napi_call_function(env, global, callback, 2, argv, NULL);
}

/* On a pool thread: what the loop could not send, waiting for room in the send buffer, briefly. */
static void execute_send(napi_env env, void *data) {
  (void)env;
  send_batch *batch = data;
  while (batch->sent < batch->count) {
    batch->sent += send_now(batch->fd, batch->messages + batch->sent, batch->count - batch->sent, &batch->failed, &batch->error);
    if (batch->sent == batch->count) break;
    struct pollfd writable = {.fd = batch->fd, .events = POLLOUT, .revents = 0};
    if (poll(&writable, 1, SEND_WAIT_MS) > 0) continue;
    /* The buffer stayed full: this datagram is lost, as on the wire; the client retransmits. */
    if (!batch->error) batch->error = EAGAIN;
    batch->failed++;
    batch->sent++;
  }
}

/* Back on the loop: done(failed, errno), failed = -1 when the work was cancelled. */
static void complete_send(napi_env env, napi_status status, void *data) {
  send_batch *batch = data;
  napi_value callback;
  if (napi_get_reference_value(env, batch->callback, &callback) == napi_ok && callback != NULL)
    call_done(env, callback, status == napi_ok ? (int32_t)batch->failed : -1, batch->error);
  napi_delete_reference(env, batch->callback);
  napi_delete_async_work(env, batch->work);
  free_batch(batch);
}

/*
 * sendBatch(fd: number, datagrams: Buffer[], destinations: Uint32Array (address, port per
 * datagram), done: (failed, errno) => void): void. Sends what the socket takes now; the rest, if
 * any, is copied and sent from the thread pool. `done` is called once, before this returns when
 * everything was settled here, else later. The fd stays open until `done` is called.
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

  uint32_t slots = count ? count : 1;
  struct mmsghdr *messages = calloc(slots, sizeof *messages);
  struct iovec *iovs = calloc(slots, sizeof *iovs);
  struct sockaddr_in *destinations = calloc(slots, sizeof *destinations);
  if (!messages || !iovs || !destinations) {
    free(messages), free(iovs), free(destinations);
    return throw_errno(env, "sendBatch", ENOMEM);
  }
  const uint32_t *destination = words;
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    void *bytes = NULL;
    size_t length = 0;
    if (napi_get_element(env, argv[1], i, &element) != napi_ok || napi_get_buffer_info(env, element, &bytes, &length) != napi_ok) {
      free(messages), free(iovs), free(destinations);
      return throw_usage(env, "datagrams must be Buffers");
    }
    iovs[i].iov_base = bytes;
    iovs[i].iov_len = length;
    total += length;
    destinations[i].sin_family = AF_INET;
    destinations[i].sin_addr.s_addr = htonl(destination[2 * i]);
    destinations[i].sin_port = htons((uint16_t)destination[2 * i + 1]);
    messages[i].msg_hdr.msg_name = &destinations[i];
    messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
    messages[i].msg_hdr.msg_iov = &iovs[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }
  uint32_t failed = 0;
  int error = 0;
  uint32_t done = send_now(fd, messages, count, &failed, &error);
  if (done == count) {
    free(messages), free(iovs), free(destinations);
    call_done(env, argv[3], (int32_t)failed, error);
    return NULL;
  }
  /* The send buffer is full: the rest leaves from the pool, copied out of the JavaScript Buffers. */
  send_batch *batch = calloc(1, sizeof *batch);
  uint32_t left = count - done;
  if (batch) {
    batch->messages = calloc(left, sizeof *batch->messages);
    batch->destinations = calloc(left, sizeof *batch->destinations);
    batch->iovs = calloc(left, sizeof *batch->iovs);
    batch->data = malloc(total ? total : 1);
  }
  if (!batch || !batch->messages || !batch->destinations || !batch->iovs || !batch->data) {
    if (batch) free_batch(batch);
    free(messages), free(iovs), free(destinations);
    return throw_errno(env, "sendBatch", ENOMEM);
  }
  batch->fd = fd;
  batch->count = left;
  batch->failed = failed;
  batch->error = error;
  size_t offset = 0;
  for (uint32_t i = 0; i < left; i++) {
    struct iovec *from = &iovs[done + i];
    memcpy(batch->data + offset, from->iov_base, from->iov_len);
    batch->iovs[i].iov_base = batch->data + offset;
    batch->iovs[i].iov_len = from->iov_len;
    offset += from->iov_len;
    batch->destinations[i] = destinations[done + i];
    batch->messages[i].msg_hdr.msg_name = &batch->destinations[i];
    batch->messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
    batch->messages[i].msg_hdr.msg_iov = &batch->iovs[i];
    batch->messages[i].msg_hdr.msg_iovlen = 1;
  }
  free(messages), free(iovs), free(destinations);
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

/* Datagrams per recvmmsg, and recvmmsg calls per wakeup: at most 256 datagrams before the loop
 * turns again (the intake orders them; timers and other sockets get their turn). */
#define RECEIVE_BATCH 64
#define RECEIVE_ROUNDS 4
/* Room per datagram: one byte more than the largest request the decoder takes (packet.ts
 * MAX_REQUEST_LENGTH), so a longer one arrives cut at this size and is refused as oversized. */
#define RECEIVE_SLOT 9001

typedef struct {
  uv_poll_t poll; /* first: the uv handle's address is the struct's */
  int fd;
  int closing;
  napi_env env;
  napi_ref on_batch;
  napi_async_context context;
  napi_async_cleanup_hook_handle cleanup;
  uint8_t *slots; /* RECEIVE_BATCH x RECEIVE_SLOT */
  struct mmsghdr messages[RECEIVE_BATCH];
  struct iovec iovs[RECEIVE_BATCH];
  struct sockaddr_in senders[RECEIVE_BATCH];
} datagram_watcher;

static void on_watcher_closed(uv_handle_t *handle) {
  datagram_watcher *watcher = (datagram_watcher *)handle;
  close(watcher->fd);
  napi_delete_reference(watcher->env, watcher->on_batch);
  napi_async_destroy(watcher->env, watcher->context);
  napi_remove_async_cleanup_hook(watcher->cleanup);
  free(watcher->slots);
  free(watcher);
}

static void close_watcher(datagram_watcher *watcher) {
  if (watcher->closing) return;
  watcher->closing = 1;
  uv_poll_stop(&watcher->poll);
  uv_close((uv_handle_t *)&watcher->poll, on_watcher_closed);
}

static void on_watcher_environment_cleanup(napi_async_cleanup_hook_handle handle, void *data) {
  (void)handle;
  close_watcher(data);
}

/* onBatch(data, table, errno): `count` datagrams packed in one Buffer; table holds (offset,
 * length, sender address, sender port) per datagram; or (null, null, errno) on a socket error. */
static void deliver_batch(datagram_watcher *watcher, unsigned count, int error) {
  napi_env env = watcher->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, receiver, arguments[3], result;
  napi_get_reference_value(env, watcher->on_batch, &callback);
  napi_get_global(env, &receiver);
  if (error) {
    napi_get_null(env, &arguments[0]);
    napi_get_null(env, &arguments[1]);
  } else {
    size_t total = 0;
    for (unsigned i = 0; i < count; i++) total += watcher->messages[i].msg_len;
    uint8_t *packed = NULL;
    void *words = NULL;
    napi_value table_buffer;
    napi_create_buffer(env, total ? total : 1, (void **)&packed, &arguments[0]);
    napi_create_arraybuffer(env, (size_t)count * 4 * sizeof(uint32_t), &words, &table_buffer);
    napi_create_typedarray(env, napi_uint32_array, (size_t)count * 4, table_buffer, 0, &arguments[1]);
    uint32_t *table = words;
    size_t offset = 0;
    for (unsigned i = 0; i < count; i++) {
      uint32_t length = watcher->messages[i].msg_len;
      memcpy(packed + offset, watcher->slots + (size_t)i * RECEIVE_SLOT, length);
      table[4 * i] = (uint32_t)offset;
      table[4 * i + 1] = length;
      table[4 * i + 2] = ntohl(watcher->senders[i].sin_addr.s_addr);
      table[4 * i + 3] = ntohs(watcher->senders[i].sin_port);
      offset += length;
    }
  }
  napi_create_int32(env, error, &arguments[2]);
  /* make_callback, not call_function: promise jobs and nextTicks run after it, as after any I/O. */
  if (napi_make_callback(env, watcher->context, receiver, callback, 3, arguments, &result) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  datagram_watcher *watcher = (datagram_watcher *)handle;
  (void)events;
  if (status < 0) {
    /* libuv stops a poll handle that reports POLLERR. Reading SO_ERROR clears the socket's error,
       so watch again: a DHCP server must not go deaf over one error, as dgram never did. */
    int err = 0;
    socklen_t size = sizeof err;
    if (getsockopt(watcher->fd, SOL_SOCKET, SO_ERROR, &err, &size) < 0 || err == 0) err = -status;
    deliver_batch(watcher, 0, err);
    if (!watcher->closing) uv_poll_start(&watcher->poll, UV_READABLE, on_readable);
    return;
  }
  for (int round = 0; round < RECEIVE_ROUNDS && !watcher->closing; round++) {
    for (unsigned i = 0; i < RECEIVE_BATCH; i++) {
      watcher->iovs[i].iov_base = watcher->slots + (size_t)i * RECEIVE_SLOT;
      watcher->iovs[i].iov_len = RECEIVE_SLOT;
      memset(&watcher->messages[i].msg_hdr, 0, sizeof(struct msghdr));
      watcher->messages[i].msg_hdr.msg_name = &watcher->senders[i];
      watcher->messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
      watcher->messages[i].msg_hdr.msg_iov = &watcher->iovs[i];
      watcher->messages[i].msg_hdr.msg_iovlen = 1;
    }
    int received;
    do received = recvmmsg(watcher->fd, watcher->messages, RECEIVE_BATCH, MSG_DONTWAIT, NULL);
    while (received < 0 && errno == EINTR);
    if (received < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) deliver_batch(watcher, 0, errno);
      return;
    }
    if (received == 0) return;
    deliver_batch(watcher, (unsigned)received, 0);
    if (received < RECEIVE_BATCH) return; /* the queue is empty */
  }
}

/*
 * watchDatagrams(fd: number, onBatch: (data: Buffer | null, table: Uint32Array | null, errno: number) => void): External
 * Takes the descriptor over: from now on it is read here, and closed by closeWatcher.
 */
static napi_value watch_datagrams(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 2, argc, argv);
  int32_t fd = -1;
  napi_valuetype callback_type = napi_undefined;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_typeof(env, argv[1], &callback_type) != napi_ok || callback_type != napi_function) {
    return throw_usage(env, "watchDatagrams(fd, onBatch)");
  }
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, NULL, "no event loop");
    return NULL;
  }
  datagram_watcher *watcher = calloc(1, sizeof *watcher);
  uint8_t *slots = malloc((size_t)RECEIVE_BATCH * RECEIVE_SLOT);
  if (!watcher || !slots) {
    free(watcher), free(slots);
    return throw_errno(env, "watchDatagrams", ENOMEM);
  }
  watcher->fd = fd;
  watcher->env = env;
  watcher->slots = slots;
  napi_value name;
  napi_create_string_utf8(env, "centra-pxe:dhcp-receive", NAPI_AUTO_LENGTH, &name);
  if (napi_async_init(env, NULL, name, &watcher->context) != napi_ok) {
    free(watcher), free(slots);
    return throw_errno(env, "napi_async_init", EINVAL);
  }
  int err;
  if ((err = uv_poll_init(loop, &watcher->poll, fd)) != 0) {
    napi_async_destroy(env, watcher->context);
    free(watcher), free(slots);
    return throw_errno(env, "uv_poll_init", -err);
  }
  /* From here on only on_watcher_closed frees it, once libuv has let go of the handle. */
  if (napi_create_reference(env, argv[1], 1, &watcher->on_batch) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_watcher_environment_cleanup, watcher, &watcher->cleanup) != napi_ok ||
      (err = uv_poll_start(&watcher->poll, UV_READABLE, on_readable)) != 0) {
    watcher->closing = 1;
    uv_close((uv_handle_t *)&watcher->poll, on_watcher_closed);
    return throw_errno(env, "cannot watch the socket", err < 0 ? -err : EINVAL);
  }
  napi_value handle;
  napi_create_external(env, watcher, NULL, NULL, &handle);
  return handle;
}

/* closeWatcher(handle): stops reading; the fd is closed once libuv lets go of it. */
static napi_value close_watcher_call(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 1, argc, argv);
  void *data = NULL;
  napi_valuetype type;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || !data) {
    return throw_usage(env, "closeWatcher(handle)");
  }
  close_watcher(data);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      EXPORTED_FUNCTION("openDeviceSocket", open_device_socket),
      EXPORTED_FUNCTION("setArpEntry", set_arp_entry),
      EXPORTED_FUNCTION("sendBatch", send_batch_call),
      EXPORTED_FUNCTION("watchDatagrams", watch_datagrams),
      EXPORTED_FUNCTION("closeWatcher", close_watcher_call),
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
