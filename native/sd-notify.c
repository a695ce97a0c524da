/*
 * sd_notify(3) without libsystemd: one datagram of "KEY=VALUE\n…" to the AF_UNIX socket systemd
 * names in $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). Node's dgram speaks UDP
 * only, and handing the job to a `systemd-notify` child races: systemd attributes a message to a
 * unit by its sender's PID, and a child that already exited may be attributed to nothing. Sent from
 * the daemon's own PID, the message needs no NotifyAccess=all.
 */
#include "common.h"

#include <stddef.h>
#include <sys/un.h>

/* notify(socketPath: string, message: string): undefined; throws with the errno's text. */
static napi_value notify(napi_env env, napi_callback_info info) {
  GET_ARGS(env, info, 2, argc, argv);
  if (argc < 2) return throw_usage(env, "notify(socketPath, message)");
  struct sockaddr_un address;
  memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  /* One byte more than any valid path, so read_string's truncation of a longer one is seen below. */
  char path[sizeof address.sun_path + 2];
  int length = read_string(env, argv[0], path, sizeof path);
  if (length < 2 || (path[0] != '/' && path[0] != '@')) return throw_usage(env, "socketPath must be absolute or @abstract");
  /* A path needs its terminating NUL inside sun_path; an abstract name may fill it (unix(7)). */
  size_t limit = path[0] == '/' ? sizeof address.sun_path - 1 : sizeof address.sun_path;
  if ((size_t)length > limit) return throw_usage(env, "socketPath is longer than sun_path allows (107 bytes, 108 @abstract)");
  memcpy(address.sun_path, path, (size_t)length);
  /* An abstract address starts with a NUL byte and is exactly as long as given (unix(7)). */
  if (path[0] == '@') address.sun_path[0] = '\0';
  socklen_t address_length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)length + (path[0] == '/'));

  char message[4096];
  int message_length = read_string(env, argv[1], message, sizeof message);
  if (message_length <= 0 || message_length >= (int)sizeof message - 1) return throw_usage(env, "message must be 1-4094 bytes");

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_UNIX)", errno);
  if (sendto(fd, message, (size_t)message_length, MSG_NOSIGNAL, (struct sockaddr *)&address, address_length) < 0) {
    return close_and_throw(env, fd, "sendto(NOTIFY_SOCKET)");
  }
  close(fd);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      EXPORTED_FUNCTION("notify", notify),
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
