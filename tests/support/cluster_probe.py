"""What a Dask cluster exposes: the listening TCP sockets of its processes, whether a port answers
HTTP, whether a client with the wrong certificate (or none) is refused."""

from __future__ import annotations

import socket


def tree(*pids: int) -> set[int]:
    """These processes and all their descendants."""
    import psutil

    found = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            found |= {pid, *(p.pid for p in proc.children(recursive=True))}
        except psutil.NoSuchProcess:
            continue
    return found


def listening(pids: set[int]) -> set[tuple[int, int]]:
    """(pid, port) of every listening TCP socket of these processes."""
    import psutil

    found = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        found |= {(pid, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
    return found


def answers_http(port: int) -> bytes:
    """The first bytes a plain HTTP GET (foreign Host header) to 127.0.0.1:port gets back within 3 s (b"": none)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b"GET /json/identity.json HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
            return s.recv(64)
    except (TimeoutError, ConnectionError):
        return b""


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def comm_ports(client) -> set[int]:
    """The scheduler's, the workers' and the nannies' comm ports, as the scheduler knows them."""
    workers = client.scheduler_info()["workers"]
    return {port_of(a) for a in (client.scheduler.address, *workers, *(w["nanny"] for w in workers.values())) if a}


def refused(address: str, security=None) -> bool:
    """True when a client with ``security`` (a certificate of its own, or none) cannot use the scheduler."""
    from distributed import Client

    try:
        with Client(address, timeout=5, security=security) as client:
            client.scheduler_info()
    except Exception:  # noqa: BLE001 - any refusal will do: TLS error, timeout, closed comm
        return True
    return False
