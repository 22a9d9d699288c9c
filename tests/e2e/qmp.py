#!/usr/bin/python3
"""A tiny QMP client (standard library only), for the e2e harness and people.

As a library:
    q = QMP("/path/qmp.sock"); q.cmd("query-tmem"); q.hmp("info tmem")

From a shell, against a running guest (`make run` prints its socket):
    tests/e2e/qmp.py SOCKET query-tmem
    tests/e2e/qmp.py SOCKET qom-set '{"path": "tmem0", "property": "budget", "value": 33554432}'
    tests/e2e/qmp.py SOCKET hmp 'info tmem'
"""
import json
import socket
import sys
import time


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:  # QEMU creates the socket a moment after it starts
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        self._read()  # the greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise QMPError("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, args=None):
        """Run one command; return its "return" value or raise QMPError."""
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
            elif "error" in r:
                raise QMPError(f"{name}: {r['error'].get('desc', r['error'])}")
            elif "return" in r:
                return r["return"]

    def hmp(self, line):
        """Run an HMP command line; return its text output."""
        return self.cmd("human-monitor-command", {"command-line": line})

    def close(self):
        self.sock.close()


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    q = QMP(argv[1])
    if argv[2] == "hmp":
        print(q.hmp(" ".join(argv[3:])), end="")
    else:
        args = json.loads(argv[3]) if len(argv) > 3 else None
        print(json.dumps(q.cmd(argv[2], args), indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (OSError, QMPError) as e:
        print(f"qmp.py: {e}", file=sys.stderr)
        sys.exit(1)
