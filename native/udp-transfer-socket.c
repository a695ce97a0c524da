/*
 * The socket of one TFTP transfer, as thin as the transfer's hot path needs it to be.
 *
 * Sending: Node's dgram makes one sendmsg per datagram, through JavaScript, C++ and libuv each
 * time. A TFTP window is many datagrams of the same size lying one after the other in one buffer
 * (file-source.ts frames them that way), which the kernel takes in a single call:
 * - UDP generic segmentation offload (UDP_SEGMENT, Linux 4.18): one sendmsg of the whole run, cut
 *   into datagrams of `segmentSize` by the NIC or, failing that, once by the stack;
 * - else sendmmsg: still one system call for the run, each datagram through the stack on its own.
 * What the send buffer cannot take now is copied into a queue and sent when the socket is writable
 * again, in order, as dgram would.
 *
 * Receiving: dgram gives every datagram a fresh 64 KiB allocation, a Buffer, and a sender object
 * whose address is printed with snprintf, all to deliver a 4-byte ACK from the one peer the socket
 * is connected to. Here the fd is watched by a uv_poll on the thread's own event loop, and each
 * datagram is read into one reused buffer and handed to JavaScript as its length.
 *
 * Armed reply: JavaScript may say beforehand what it will send when a given ACK arrives (the state
 * machine is pure, so it can be asked early); that ACK then triggers the send here, before any
 * JavaScript runs. The turn from ACK to DATA bounds a lock-step transfer. The armed run's Buffer is
 * held here by a reference of our own until the reply fires, is replaced, or the socket closes, so
 * the memory the pointer points into cannot be collected whatever JavaScript keeps.
 */
#include "common.h"

#include <netinet/udp.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <uv.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

/* The kernel refuses more segments per GSO send (UDP_MAX_SEGMENTS) and more than an IPv4 packet. */
#define MAX_GSO_SEGMENTS 64
#define MAX_GSO_BYTES 65000
/* Datagrams per sendmmsg; a longer run is sent in turns. */
#define MAX_BATCH 64
/* Bytes waiting for the socket to drain; past this a send is dropped (the timer resends it). */
#define MAX_QUEUED_BYTES (8u << 20)
/* At most this many datagrams per wakeup, so one busy transfer cannot hold the loop. */
#define READS_PER_WAKEUP 32

static int is_transient(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS; }

/* Datagrams the send buffer had no room for, in order. */
typedef struct queued_run {
  struct queued_run *next;
  size_t length;
  size_t offset; /* bytes of it already sent */
  int segment_size;
  uint8_t data[];
} queued_run;

typedef struct {
  uv_poll_t poll; /* first: the uv handle's address is the struct's */
  int fd;
  int closing;
  int gso_usable; /* cleared on the first send this route cannot segment */
  int error;      /* a send error not yet reported to JavaScript */
  napi_env env;
  napi_ref on_datagram;
  napi_ref receive_buffer;
  uint8_t *buffer;
  size_t capacity;
  napi_async_context context;
  napi_async_cleanup_hook_handle cleanup;
  queued_run *queue, *queue_tail;
  size_t queued_bytes;
  /* The reply armed by armReply: sent when ACK armed_block arrives. */
  int armed;
  uint16_t armed_block;
  napi_ref armed_buffer; /* keeps armed_run's Buffer alive while armed; NULL when nothing is */
  uint8_t *armed_run;
  size_t armed_length;
  int armed_segment_size;
} transfer_socket;

/* One GSO send of `count` segments; returns segments sent, 0 when the buffer is full, -errno. */
static int send_segmented(int fd, uint8_t *data, size_t length, uint16_t segment_size, int count) {
  struct iovec iov = {data, length};
  char control[CMSG_SPACE(sizeof(uint16_t))];
  memset(control, 0, sizeof control);
  struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
  cmsg->cmsg_level = SOL_UDP;
  cmsg->cmsg_type = UDP_SEGMENT;
  cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  memcpy(CMSG_DATA(cmsg), &segment_size, sizeof segment_size);
  ssize_t sent;
  do sent = sendmsg(fd, &message, 0);
  while (sent < 0 && errno == EINTR);
  if (sent >= 0) return count;
  return is_transient(errno) ? 0 : -errno;
}

/* sendmmsg of `count` datagrams; returns datagrams sent, 0 when the buffer is full, -errno. */
static int send_each(int fd, uint8_t *data, size_t length, size_t segment_size, int count) {
  struct mmsghdr messages[MAX_BATCH];
  struct iovec iovs[MAX_BATCH];
  if (count > MAX_BATCH) count = MAX_BATCH;
  memset(messages, 0, sizeof(struct mmsghdr) * (size_t)count);
  for (int i = 0; i < count; i++) {
    size_t offset = (size_t)i * segment_size;
    iovs[i].iov_base = data + offset;
    iovs[i].iov_len = length - offset < segment_size ? length - offset : segment_size;
    messages[i].msg_hdr.msg_iov = &iovs[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }
  int sent;
  do sent = sendmmsg(fd, messages, (unsigned)count, 0);
  while (sent < 0 && errno == EINTR);
  if (sent >= 0) return sent;
  return is_transient(errno) ? 0 : -errno;
}

/*
 * Sends `length` bytes at `data` as consecutive datagrams of `segment_size` bytes (the last may be
 * shorter). Returns how many left now (fewer than all: the send buffer is full), or -errno when one
 * failed; datagrams sent before a failure are lost to the caller's count, as on the wire.
 */
static int send_datagrams(transfer_socket *socket, uint8_t *data, size_t length, int segment_size) {
  int total = (int)((length + (size_t)segment_size - 1) / (size_t)segment_size);
  int done = 0;
  while (done < total) {
    uint8_t *from = data + (size_t)done * (size_t)segment_size;
    size_t left = length - (size_t)done * (size_t)segment_size;
    int count = total - done;
    int per_send = MAX_GSO_BYTES / segment_size;
    if (per_send > MAX_GSO_SEGMENTS) per_send = MAX_GSO_SEGMENTS;
    int sent;
    if (count == 1) {
      ssize_t n;
      do n = send(socket->fd, from, left, 0);
      while (n < 0 && errno == EINTR);
      sent = n >= 0 ? 1 : (is_transient(errno) ? 0 : -errno);
    } else if (socket->gso_usable && per_send >= 2) {
      if (count > per_send) count = per_send;
      size_t bytes = (size_t)count * (size_t)segment_size;
      sent = send_segmented(socket->fd, from, bytes < left ? bytes : left, (uint16_t)segment_size, count);
      if (sent == -EIO || sent == -EINVAL || sent == -ENOPROTOOPT || sent == -EOPNOTSUPP || sent == -EMSGSIZE) {
        /* No UDP GSO on this route (no kernel support, a device without checksum offload), or a
         * segment larger than the route's MTU (a blksize relying on IP fragmentation). */
        socket->gso_usable = 0;
        sent = send_each(socket->fd, from, left, (size_t)segment_size, count);
      }
    } else {
      /* Segments too large to group (blksize near 65464), or no GSO: one datagram per message. */
      sent = send_each(socket->fd, from, left, (size_t)segment_size, count);
    }
    if (sent < 0) return sent;
    if (sent == 0) break;
    done += sent;
  }
  return done;
}

static void on_poll(uv_poll_t *handle, int status, int events);

/* Keep `length` bytes at `data` for when the socket drains. False when the queue is full. */
static int enqueue(transfer_socket *socket, const uint8_t *data, size_t length, int segment_size) {
  if (socket->queued_bytes + length > MAX_QUEUED_BYTES) return 0;
  queued_run *run = malloc(sizeof *run + length);
  if (!run) return 0;
  run->next = NULL;
  run->length = length;
  run->offset = 0;
  run->segment_size = segment_size;
  memcpy(run->data, data, length);
  if (socket->queue_tail) socket->queue_tail->next = run;
  else socket->queue = run;
  socket->queue_tail = run;
  socket->queued_bytes += length;
  if (!socket->closing) uv_poll_start(&socket->poll, UV_READABLE | UV_WRITABLE, on_poll);
  return 1;
}

/*
 * Send a run now, or what is left of it later: after anything already queued, so datagrams leave
 * in the order they were given. Returns the datagrams sent or queued (fewer: the queue is full,
 * the rest are lost as on a congested wire), or -errno.
 */
static int send_or_queue(transfer_socket *socket, uint8_t *data, size_t length, int segment_size) {
  int total = (int)((length + (size_t)segment_size - 1) / (size_t)segment_size);
  int sent = 0;
  if (!socket->queue) {
    sent = send_datagrams(socket, data, length, segment_size);
    if (sent < 0 || sent == total) return sent;
  }
  size_t offset = (size_t)sent * (size_t)segment_size;
  return enqueue(socket, data + offset, length - offset, segment_size) ? total : sent;
}

static void flush_queue(transfer_socket *socket) {
  while (socket->queue) {
    queued_run *run = socket->queue;
    size_t left = run->length - run->offset;
    int sent = send_datagrams(socket, run->data + run->offset, left, run->segment_size);
    if (sent < 0) {
      socket->error = -sent;
      sent = (int)((left + (size_t)run->segment_size - 1) / (size_t)run->segment_size); /* drop it */
    }
    size_t bytes = (size_t)sent * (size_t)run->segment_size;
    if (bytes < left) {
      run->offset += bytes;
      return; /* still full: wait for the next writable event */
    }
    socket->queue = run->next;
    if (!socket->queue) socket->queue_tail = NULL;
    socket->queued_bytes -= run->length;
    free(run);
  }
  if (!socket->closing) uv_poll_start(&socket->poll, UV_READABLE, on_poll);
}

static void free_queue(transfer_socket *socket) {
  while (socket->queue) {
    queued_run *next = socket->queue->next;
    free(socket->queue);
    socket->queue = next;
  }
  socket->queue_tail = NULL;
  socket->queued_bytes = 0;
}

/*
 * Let go of the armed run: after it fired (the bytes were sent or copied into the queue), when a
 * new one replaces it, when JavaScript disarms, and when the socket closes. Runs on the JavaScript
 * thread (the uv loop is the environment's own), where references may be deleted.
 */
static void disarm(transfer_socket *socket) {
  socket->armed = 0;
  socket->armed_run = NULL;
  if (socket->armed_buffer) {
    napi_delete_reference(socket->env, socket->armed_buffer);
    socket->armed_buffer = NULL;
  }
}

/* Runs from the loop after close, never inside a delivery; the environment is still alive (the
 * async cleanup hook is removed only here, so Node waits for it). */
static void on_closed(uv_handle_t *handle) {
  transfer_socket *socket = (transfer_socket *)handle;
  close(socket->fd);
  free_queue(socket);
  disarm(socket);
  napi_delete_reference(socket->env, socket->on_datagram);
  napi_delete_reference(socket->env, socket->receive_buffer);
  napi_async_destroy(socket->env, socket->context);
  napi_remove_async_cleanup_hook(socket->cleanup);
  free(socket);
}

/* Stop watching now; libuv frees the handle on its next turn. */
static void close_socket(transfer_socket *socket) {
  if (socket->closing) return;
  socket->closing = 1;
  disarm(socket);
  uv_poll_stop(&socket->poll);
  uv_close((uv_handle_t *)&socket->poll, on_closed);
}

/* The thread's environment is going away (a worker ending) with this socket still open. */
static void on_environment_cleanup(napi_async_cleanup_hook_handle handle, void *data) {
  (void)handle;
  close_socket(data);
}

/*
 * Hands one datagram to JS: its length (the bytes are in the receive buffer) and how many datagrams
 * the armed reply sent for it (-1: it did not fire); or an error as -errno.
 */
static void deliver(transfer_socket *socket, int32_t value, int32_t replied) {
  napi_env env = socket->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, receiver, arguments[2], result;
  napi_get_reference_value(env, socket->on_datagram, &callback);
  napi_get_global(env, &receiver); /* MakeCallback needs an object as `this` */
  napi_create_int32(env, value, &arguments[0]);
  napi_create_int32(env, replied, &arguments[1]);
  /* make_callback, not call_function: promise jobs and nextTicks run after it, as after any I/O. */
  if (napi_make_callback(env, socket->context, receiver, callback, 2, arguments, &result) == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
  napi_close_handle_scope(env, scope);
}

static void report_error(transfer_socket *socket) {
  if (socket->error && !socket->closing) {
    int err = socket->error;
    socket->error = 0;
    deliver(socket, -err, -1);
  }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  transfer_socket *socket = (transfer_socket *)handle;
  if (status < 0) {
    /* libuv reports a generic error; the socket knows which (ECONNREFUSED after ICMP). */
    int err = 0;
    socklen_t size = sizeof err;
    if (getsockopt(socket->fd, SOL_SOCKET, SO_ERROR, &err, &size) < 0 || err == 0) err = -status;
    deliver(socket, -err, -1);
    return;
  }
  if (events & UV_WRITABLE) {
    flush_queue(socket);
    report_error(socket);
  }
  if (!(events & UV_READABLE)) return;
  for (int i = 0; i < READS_PER_WAKEUP && !socket->closing; i++) {
    /* MSG_TRUNC: the datagram's real length even when it is longer than the buffer (junk). */
    ssize_t n = recv(socket->fd, socket->buffer, socket->capacity, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      /* ECONNREFUSED: the client's host answered with ICMP port unreachable, it went away. */
      deliver(socket, -errno, -1);
      return;
    }
    int replied = -1; /* the armed reply did not fire */
    const uint8_t *ack = socket->buffer;
    if (socket->armed && n == 4 && ack[0] == 0 && ack[1] == 4 && ((ack[2] << 8) | ack[3]) == socket->armed_block) {
      replied = send_or_queue(socket, socket->armed_run, socket->armed_length, socket->armed_segment_size);
      if (replied < 0) {
        socket->error = -replied;
        replied = 0;
      }
      /* Sent, or copied into the queue: the run's memory is not needed any more. */
      disarm(socket);
    }
    deliver(socket, n > INT32_MAX ? INT32_MAX : (int32_t)n, replied);
    report_error(socket);
  }
}

/*
 * openTransferSocket(localAddress: string, clientAddress: string, clientPort: number,
 *                    sendBufferBytes: number, receiveBuffer: Buffer,
 *                    onDatagram: (lengthOrNegativeErrno: number, replied: number) => void): External
 * A UDP socket on an ephemeral port of localAddress (the transfer's own TID, RFC 1350 §4),
 * connected to the client so only its datagrams arrive and sends need no address. Each datagram
 * is read into receiveBuffer and announced with its length; a socket error with -errno.
 */
static napi_value open_transfer_socket(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 6, argc, argv);
  char local[64], remote[64];
  int32_t port = 0, send_buffer = 0;
  void *buffer = NULL;
  size_t capacity = 0;
  napi_valuetype callback_type = napi_undefined;
  if (argc < 6 || read_string(env, argv[0], local, sizeof local) < 0 || read_string(env, argv[1], remote, sizeof remote) < 0 ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || port <= 0 || port > 65535 ||
      napi_get_value_int32(env, argv[3], &send_buffer) != napi_ok ||
      napi_get_buffer_info(env, argv[4], &buffer, &capacity) != napi_ok || capacity == 0 ||
      napi_typeof(env, argv[5], &callback_type) != napi_ok || callback_type != napi_function) {
    return throw_usage(env, "openTransferSocket(localAddress, clientAddress, clientPort, sendBufferBytes, receiveBuffer, onDatagram)");
  }
  struct sockaddr_in here, there;
  if (!ipv4_address(local, 0, &here) || !ipv4_address(remote, (uint16_t)port, &there)) return throw_usage(env, "addresses must be IPv4");
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, NULL, "no event loop");
    return NULL;
  }
  int fd = open_udp_socket();
  if (fd < 0) return throw_errno(env, "socket", errno);
  /* Room for a few windows, so the queue is the exception. */
  set_buffer_size(fd, SO_SNDBUFFORCE, SO_SNDBUF, send_buffer);
  int err;
  if (bind(fd, (struct sockaddr *)&here, sizeof here) < 0) return close_and_throw(env, fd, "bind");
  if (connect(fd, (struct sockaddr *)&there, sizeof there) < 0) return close_and_throw(env, fd, "connect");
  transfer_socket *socket = calloc(1, sizeof *socket);
  if (!socket) {
    close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  socket->fd = fd;
  socket->env = env;
  socket->buffer = buffer;
  socket->capacity = capacity;
  socket->gso_usable = 1;
  napi_value name;
  napi_create_string_utf8(env, "centra-pxe:tftp-transfer", NAPI_AUTO_LENGTH, &name);
  if (napi_async_init(env, NULL, name, &socket->context) != napi_ok) {
    close(fd);
    free(socket);
    return throw_errno(env, "napi_async_init", EINVAL);
  }
  if ((err = uv_poll_init(loop, &socket->poll, fd)) != 0) {
    napi_async_destroy(env, socket->context);
    close(fd);
    free(socket);
    return throw_errno(env, "uv_poll_init", -err);
  }
  /* From here on only on_closed frees it, once libuv has let go of the handle. */
  if (napi_create_reference(env, argv[4], 1, &socket->receive_buffer) != napi_ok ||
      napi_create_reference(env, argv[5], 1, &socket->on_datagram) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_environment_cleanup, socket, &socket->cleanup) != napi_ok ||
      (err = uv_poll_start(&socket->poll, UV_READABLE, on_poll)) != 0) {
    socket->closing = 1;
    uv_close((uv_handle_t *)&socket->poll, on_closed);
    return throw_errno(env, "cannot watch the socket", err < 0 ? -err : EINVAL);
  }
  napi_value handle;
  napi_create_external(env, socket, NULL, NULL, &handle);
  return handle;
}

/* The socket behind a handle; transfer-socket.ts never passes one after closing it. */
static transfer_socket *socket_of(napi_env env, napi_value value) {
  void *data = NULL;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external || napi_get_value_external(env, value, &data) != napi_ok) return NULL;
  return data;
}

/* closeTransferSocket(handle): stops receiving; the fd is closed once libuv lets go of it. */
static napi_value close_transfer_socket(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 1, argc, argv);
  transfer_socket *socket = argc == 1 ? socket_of(env, argv[0]) : NULL;
  if (!socket) return throw_usage(env, "closeTransferSocket(handle)");
  close_socket(socket);
  return NULL;
}

/*
 * sendRun(handle, run: Buffer, segmentSize: number): number
 * Sends `run` as consecutive datagrams of `segmentSize` bytes (the last may be shorter); what the
 * send buffer cannot take now is queued and sent in order when it drains. Returns how many were
 * sent or queued: fewer than all only when the queue is full too, and the transfer's
 * retransmission then recovers them as it would a loss on the wire. Throws the socket's error
 * (ECONNREFUSED: the client went away).
 */
static napi_value send_run(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 3, argc, argv);
  int32_t segment_size = 0;
  uint8_t *data = NULL;
  size_t length = 0;
  transfer_socket *socket = argc >= 1 ? socket_of(env, argv[0]) : NULL;
  if (argc < 3 || !socket || socket->closing ||
      napi_get_buffer_info(env, argv[1], (void **)&data, &length) != napi_ok ||
      napi_get_value_int32(env, argv[2], &segment_size) != napi_ok || segment_size <= 0 || segment_size > 65535 || length == 0) {
    return throw_usage(env, "sendRun(handle, run, segmentSize) on an open socket");
  }
  if (socket->error) {
    int err = socket->error;
    socket->error = 0;
    return throw_errno(env, "send", err);
  }
  int sent = send_or_queue(socket, data, length, segment_size);
  if (sent < 0) return throw_errno(env, "send", -sent);
  return int_value(env, sent);
}

/*
 * armReply(handle, ackBlock: number, run: Buffer | undefined, segmentSize: number): void
 * When the next datagram is ACK `ackBlock`, send `run` at once, from here, before JavaScript runs.
 * JavaScript decided `run` beforehand; this holds a reference to it until the reply fires or is
 * replaced. The ACK is still delivered, with how many datagrams left. Fires once; a later call
 * replaces it, and `run` undefined disarms.
 */
static napi_value arm_reply(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 4, argc, argv);
  transfer_socket *socket = argc >= 1 ? socket_of(env, argv[0]) : NULL;
  int32_t block = 0, segment_size = 0;
  napi_valuetype run_type = napi_undefined;
  if (argc < 4 || !socket || napi_get_value_int32(env, argv[1], &block) != napi_ok || block < 0 || block > 0xffff ||
      napi_typeof(env, argv[2], &run_type) != napi_ok || napi_get_value_int32(env, argv[3], &segment_size) != napi_ok) {
    return throw_usage(env, "armReply(handle, ackBlock, run, segmentSize)");
  }
  disarm(socket);
  if (run_type == napi_undefined || socket->closing) return NULL;
  uint8_t *data = NULL;
  size_t length = 0;
  if (napi_get_buffer_info(env, argv[2], (void **)&data, &length) != napi_ok || length == 0 || segment_size <= 0 || segment_size > 65535) {
    return throw_usage(env, "armReply: run must be a non-empty Buffer and segmentSize 1-65535");
  }
  if (napi_create_reference(env, argv[2], 1, &socket->armed_buffer) != napi_ok) {
    socket->armed_buffer = NULL;
    return throw_errno(env, "armReply: napi_create_reference", ENOMEM);
  }
  socket->armed = 1;
  socket->armed_block = (uint16_t)block;
  socket->armed_run = data;
  socket->armed_length = length;
  socket->armed_segment_size = segment_size;
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      EXPORTED_FUNCTION("openTransferSocket", open_transfer_socket),
      EXPORTED_FUNCTION("sendRun", send_run),
      EXPORTED_FUNCTION("armReply", arm_reply),
      EXPORTED_FUNCTION("closeTransferSocket", close_transfer_socket),
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
