{
  "targets": [
    {
      "target_name": "udp_device_socket",
      "sources": ["native/udp-device-socket.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
