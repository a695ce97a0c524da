/*
 * What the addons share (udp-device-socket.c for DHCP, udp-transfer-socket.c for TFTP, sd-notify.c): errors
 * thrown with the errno's text, argument reading, and the setup of a non-blocking IPv4 UDP socket.
 * Header-only and static: each addon is its own shared object, built from one .c file.
 */
#ifndef CENTRA_PXE_NATIVE_COMMON_H
#define CENTRA_PXE_NATIVE_COMMON_H

#define NAPI_VERSION 8
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
/* One entry of an addon's exports table: a JavaScript function named `name` calling `function`. */
#define EXPORTED_FUNCTION(name, function) {(name), NULL, (function), NULL, NULL, NULL, napi_default, NULL}

#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Reads the call's arguments into `argv` (an array of `count`); `argc` says how many were passed. */
#define GET_ARGS(env, info, count, argc, argv)                  \
  size_t argc = (count);                                        \
  napi_value argv[(count)];                                     \
  napi_get_cb_info((env), (info), &argc, argv, NULL, NULL)

/*
 * Throws an Error "<what>: <strerror>" whose `code` is EPERM for a missing privilege (so the caller
 * can say which capability is missing) and ESOCKET otherwise. Returns NULL for `return`.
 */
static inline napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, err == EPERM || err == EACCES ? "EPERM" : "ESOCKET", message);
  return NULL;
}

/* Throws a TypeError with `usage` (the call's signature). Returns NULL for `return`. */
static inline napi_value throw_usage(napi_env env, const char *usage) {
  napi_throw_type_error(env, NULL, usage);
  return NULL;
}

static inline napi_value int_value(napi_env env, int32_t value) {
  napi_value result;
  napi_create_int32(env, value, &result);
  return result;
}

/* A string argument into `out` (NUL-terminated, cut at `size` - 1); its length, or -1. */
static inline int read_string(napi_env env, napi_value value, char *out, size_t size) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, out, size, &length) != napi_ok) return -1;
  return (int)length;
}

/* An IPv4 address and port as a sockaddr; 0 when `text` is not a dotted quad. */
static inline int ipv4_address(const char *text, uint16_t port, struct sockaddr_in *out) {
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons(port);
  return inet_pton(AF_INET, text, &out->sin_addr) == 1;
}

/* A non-blocking, close-on-exec IPv4 UDP socket; -1 with errno set. */
static inline int open_udp_socket(void) {
  return socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/*
 * Sets a socket buffer (`forced` SO_SNDBUFFORCE / SO_RCVBUFFORCE, else `plain` SO_SNDBUF /
 * SO_RCVBUF): the forced option passes net.core.[wr]mem_max but needs CAP_NET_ADMIN; without it
 * the kernel caps the plain one. A size of 0 or less leaves the default.
 */
static inline void set_buffer_size(int fd, int forced, int plain, int bytes) {
  if (bytes <= 0) return;
  if (setsockopt(fd, SOL_SOCKET, forced, &bytes, sizeof bytes) < 0) setsockopt(fd, SOL_SOCKET, plain, &bytes, sizeof bytes);
}

/* Closes `fd` and throws "<what>: <strerror(errno)>", keeping the errno of the failed call. */
static inline napi_value close_and_throw(napi_env env, int fd, const char *what) {
  int err = errno;
  close(fd);
  return throw_errno(env, what, err);
}

/* One entry of an addon's exports table: a JavaScript function named `name` calling `function`. */
#define EXPORTED_FUNCTION(name, function) {(name), NULL, (function), NULL, NULL, NULL, napi_default, NULL}

#endif
