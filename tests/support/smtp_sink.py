#!/usr/bin/env python3
"""A real SMTP server for tests (aiosmtpd): stores each accepted message as <n>.eml in a
directory and can answer the first N deliveries with a temporary 451 error.

Usage: smtp_sink.py PORT DIR [FAIL_FIRST]

Each refused delivery leaves an empty `refused-<n>` marker file, so a test can tell a retry
happened. Prints "ready" once listening; stops on SIGTERM or when stdin closes.
"""
import os
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, fail_first):
        self.directory = directory
        self.fail_first = fail_first
        self.lock = threading.Lock()
        self.refused = 0
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.refused < self.fail_first:
                self.refused += 1
                open(os.path.join(self.directory, f"refused-{self.refused}"), "w").close()
                return "451 4.3.0 Temporary failure, try again later"
            self.accepted += 1
            n = self.accepted
        tmp = os.path.join(self.directory, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.content)
        os.rename(tmp, os.path.join(self.directory, f"{n}.eml"))
        return "250 OK"


def main():
    port = int(sys.argv[1])
    directory = sys.argv[2]
    fail_first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    os.makedirs(directory, exist_ok=True)
    controller = Controller(Sink(directory, fail_first), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
