{
  "targets": [
    {
      "target_name": "udp_device_socket",
      "sources": ["native/udp-device-socket.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "udp_transfer_socket",
      "sources": ["native/udp-transfer-socket.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "sd_notify",
      "sources": ["native/sd-notify.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "tcp_sendfile",
      "sources": ["native/tcp-sendfile.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
