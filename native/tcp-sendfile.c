/*
 * File bytes to a TCP connection with sendfile(2), for the HTTP boot downloads (src/http/file-stream.ts).
 *
 * Why: the copy path reads each chunk into a Buffer (the kernel copies it out of the page cache) and
 * writes it (the kernel copies it back into the socket), with a thread-pool hop and a write callback
 * per 256 KiB. sendfile hands the page-cache pages to the socket: no copy on our side and one hop
 * per socket buffer rather than per chunk. On a loaded 2-core machine that CPU is what a lone 8 MB
 * download waited for (bench/http: 0.54x nginx, which uses sendfile).
 *
 * One call is one "round", run on the libuv thread pool (a page-cache miss blocks sendfile on the
 * disk, which must not block the event loop): sendfile until `length` or `maxSend` bytes went out
 * or the socket buffer is full. A full buffer is waited for here for at most `pollMs` (a client that
 * keeps up drains it in far less), then the round reads the next `piece` bytes into the caller's
 * buffer and ends. JavaScript writes that piece through Node's socket: its callback is the wait for
 * a slow reader, with Node's own write queue, timeouts and teardown, and the pool thread is free.
 *
 * libuv owns the socket's fd and may close it at any time (a timeout, the client going away); the
 * number could then name another file. So a round works on its own dup of the fd: the connection
 * stays open until the round ends, and nothing else is ever written to.
 */
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/sendfile.h>

typedef struct {
  napi_async_work work;
  napi_ref callback;
  napi_ref piece_ref; /* keeps the piece's Buffer alive while the pool thread writes into it */
  uint8_t *piece;
  size_t piece_capacity;
  int socket_fd; /* our dup, closed when the round ends */
  int file_fd;
  int64_t position;
  int64_t length;
  int64_t max_send;
  int poll_ms;
  /* results */
  int64_t sent;
  int64_t piece_bytes;
  int error; /* errno of the failed call, or -1 for a file that ended before `length` */
} send_round;

static void run_round(napi_env env, void *data) {
  (void)env;
  send_round *round = data;
  off_t offset = (off_t)round->position;
  int blocked = 0;
  while (round->sent < round->length && round->sent < round->max_send) {
    int64_t want = round->length - round->sent;
    if (want > round->max_send - round->sent) want = round->max_send - round->sent;
    /* Linux sends at most 0x7ffff000 bytes per call (sendfile(2) NOTES). */
    if (want > 0x7ffff000) want = 0x7ffff000;
    ssize_t n = sendfile(round->socket_fd, round->file_fd, &offset, (size_t)want);
    if (n > 0) {
      round->sent += n;
      continue;
    }
    if (n == 0) {
      round->error = -1; /* the file shrank under us */
      return;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      round->error = errno;
      return;
    }
    struct pollfd writable = {.fd = round->socket_fd, .events = POLLOUT};
    int ready;
    do ready = poll(&writable, 1, round->poll_ms);
    while (ready < 0 && errno == EINTR);
    if (ready <= 0) {
      blocked = 1;
      break;
    }
    /* POLLERR / POLLHUP: the next sendfile says which error. */
  }
  /* A first round (maxSend 0) or a full socket buffer: the piece JavaScript writes next. */
  int64_t rest = round->length - round->sent;
  if ((blocked || round->max_send == 0) && rest > 0 && round->piece_capacity > 0) {
    size_t want = rest < (int64_t)round->piece_capacity ? (size_t)rest : round->piece_capacity;
    ssize_t n;
    do n = pread(round->file_fd, round->piece, want, offset);
    while (n < 0 && errno == EINTR);
    if (n < 0) round->error = errno;
    else if (n == 0) round->error = -1;
    else round->piece_bytes = n;
  }
}

static void finish_round(napi_env env, napi_status status, void *data) {
  send_round *round = data;
  close(round->socket_fd);
  napi_value callback, global, argv[3];
  napi_get_reference_value(env, round->callback, &callback);
  napi_get_global(env, &global);
  if (status != napi_ok) {
    napi_create_string_utf8(env, "ECANCELED", NAPI_AUTO_LENGTH, &argv[0]);
  } else if (round->error == -1) {
    napi_create_string_utf8(env, "EOF", NAPI_AUTO_LENGTH, &argv[0]);
  } else if (round->error != 0) {
    const char *name = round->error == EPIPE        ? "EPIPE"
                       : round->error == ECONNRESET ? "ECONNRESET"
                       : round->error == EBADF      ? "EBADF"
                                                    : strerror(round->error);
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &argv[0]);
  } else {
    napi_get_null(env, &argv[0]);
  }
  napi_create_int64(env, round->sent, &argv[1]);
  napi_create_int64(env, round->piece_bytes, &argv[2]);
  napi_delete_reference(env, round->callback);
  if (round->piece_ref) napi_delete_reference(env, round->piece_ref);
  napi_delete_async_work(env, round->work);
  free(round);
  napi_call_function(env, global, callback, 3, argv, NULL);
}

/*
 * sendRound(socketFd, fileFd, position, length, maxSend, pollMs, piece: Buffer,
 *           callback(error: string | null, sent: number, pieceBytes: number)): undefined
 */
static napi_value send_round_call(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 8, argc, argv);
  static const char usage[] = "sendRound(socketFd, fileFd, position, length, maxSend, pollMs, piece, callback)";
  if (argc < 8) return throw_usage(env, usage);
  int32_t socket_fd, file_fd, poll_ms;
  int64_t position, length, max_send;
  if (napi_get_value_int32(env, argv[0], &socket_fd) != napi_ok || napi_get_value_int32(env, argv[1], &file_fd) != napi_ok ||
      napi_get_value_int64(env, argv[2], &position) != napi_ok || napi_get_value_int64(env, argv[3], &length) != napi_ok ||
      napi_get_value_int64(env, argv[4], &max_send) != napi_ok || napi_get_value_int32(env, argv[5], &poll_ms) != napi_ok)
    return throw_usage(env, usage);
  bool is_buffer = false;
  napi_valuetype callback_type;
  napi_is_buffer(env, argv[6], &is_buffer);
  napi_typeof(env, argv[7], &callback_type);
  if (!is_buffer || callback_type != napi_function || socket_fd < 0 || file_fd < 0 || position < 0 || length < 0 ||
      max_send < 0 || poll_ms < 0)
    return throw_usage(env, usage);

  send_round *round = calloc(1, sizeof *round);
  if (!round) return throw_errno(env, "sendRound", ENOMEM);
  void *piece = NULL;
  napi_get_buffer_info(env, argv[6], &piece, &round->piece_capacity);
  round->piece = piece;
  round->file_fd = file_fd;
  round->position = position;
  round->length = length;
  round->max_send = max_send;
  round->poll_ms = poll_ms;
  round->socket_fd = fcntl(socket_fd, F_DUPFD_CLOEXEC, 0);
  if (round->socket_fd < 0) {
    int err = errno;
    free(round);
    return throw_errno(env, "dup(socket)", err);
  }
  napi_create_reference(env, argv[6], 1, &round->piece_ref);
  napi_create_reference(env, argv[7], 1, &round->callback);
  napi_value name;
  napi_create_string_utf8(env, "centra-pxe:sendfile", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, run_round, finish_round, round, &round->work);
  napi_queue_async_work(env, round->work);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      EXPORTED_FUNCTION("sendRound", send_round_call),
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
