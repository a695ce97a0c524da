#!/usr/bin/env python3
"""A stand-in for systemd's notification socket (sd_notify(3)): binds a unix datagram socket at
argv[1] and prints every message as one line, "PID<TAB>KEY=VALUE|KEY=VALUE", the sender's PID taken
from the kernel's SCM_CREDENTIALS as systemd does to attribute a message to a unit."""
import socket
import struct
import sys

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print("listening", flush=True)
credentials_size = struct.calcsize("3i")
while True:
    data, ancillary, _flags, _address = sock.recvmsg(4096, socket.CMSG_SPACE(credentials_size))
    pid = 0
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("3i", payload[:credentials_size])[0]
    print(f"{pid}\t{data.decode().strip().replace(chr(10), '|')}", flush=True)
