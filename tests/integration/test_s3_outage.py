"""The S3 server goes down for a few seconds while RunStore commits shards.

Retries must carry every commit through the outage, and no reader may ever see a partial object
under a final shard name: a watcher lists and reads the prefix for the whole test, through the
outage and the recovery, and checks every object it sees against the complete bytes.

moto's `ThreadedMotoServer` can be stopped and started again on the same port, and keeps its
buckets (moto's backends live in the process, not in the server: checked by hand, and below by the
shard committed before the first outage). It cannot hold one request in flight, though, which
phase 2 needs (the server dies while a part of a multipart upload is on the wire), nor does it
promise to cut open keep-alive connections when it stops. So this module serves moto's own WSGI
app with a server that goes away for real: listener closed, every open connection cut.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metamath_ray import storage
from metamath_ray.storage import RunStore, StorageError, table_to_parquet_bytes

pytestmark = pytest.mark.integration

OUTAGE_S = 3.0
PREFIX = "runs"
RUN = "outage"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OutageS3Server:
    """moto's S3 API on a fixed 127.0.0.1 port that can be stopped (connections cut) and restarted.

    `hook(environ)` runs before a request is served; a test uses it to hold one request.
    """

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.app = DomainDispatcherApplication(create_backend_app)
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.hook = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None

    def _wsgi(self, environ, start_response):
        if self.hook is not None:
            self.hook(environ)
        return self.app(environ, start_response)

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        outer = self

        class Handler(MotoRequestHandler):
            def setup(self):
                super().setup()
                with outer._lock:
                    outer._conns.add(self.connection)

            def finish(self):
                with outer._lock:
                    outer._conns.discard(self.connection)
                super().finish()

        self._server = make_server("127.0.0.1", self.port, self._wsgi, threaded=True, request_handler=Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()  # the port now refuses connections
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:  # keep-alive connections die with the server
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self._thread.join(timeout=10)
        self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def refuses_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True


def _client(endpoint: str):
    import boto3
    from botocore.config import Config

    # No retries and short timeouts: the watcher wants to see the outage, not ride it out.
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                      connect_timeout=1, read_timeout=10))


class VisibilityWatcher(threading.Thread):
    """Lists the run prefix again and again; reads every object that appears under a final name
    and checks it byte for byte against the complete shard (and that it parses as Parquet)."""

    def __init__(self, endpoint: str, bucket: str, expected: dict[str, str]):
        super().__init__(daemon=True)
        self.client = _client(endpoint)
        self.bucket, self.expected = bucket, expected
        self.stop_event = threading.Event()
        self.verified: dict[str, str] = {}  # key -> ETag checked
        self.violations: list[str] = []
        self.ok_polls = self.failed_polls = 0

    def run(self) -> None:
        from botocore.exceptions import BotoCoreError

        while not self.stop_event.is_set():
            try:
                listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"{PREFIX}/{RUN}/")
                for obj in listing.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/") and obj["Size"] == 0:
                        continue  # a folder marker, not data
                    if self.verified.get(key) == obj["ETag"]:
                        continue
                    self._check(key, obj["ETag"])
                self.ok_polls += 1
            except BotoCoreError:  # the server is down: nothing can be seen, keep polling
                self.failed_polls += 1
            time.sleep(0.02)

    def _check(self, key: str, etag: str) -> None:
        if key not in self.expected:
            self.violations.append(f"unexpected object {key}")
            self.verified[key] = etag
            return
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        if hashlib.sha256(body).hexdigest() != self.expected[key]:
            self.violations.append(f"{key}: {len(body)} bytes that are not the complete shard")
        else:
            pq.read_table(pa.BufferReader(body))  # and it is readable Parquet
        self.verified[key] = etag


class Committer(threading.Thread):
    """Commits shards one after another, recording when each commit returned."""

    def __init__(self, store: RunStore, shards: dict[str, pa.Table]):
        super().__init__(daemon=True)
        self.store, self.shards = store, shards
        self.done_at: dict[str, float] = {}
        self.infos = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for rel, table in self.shards.items():
                self.infos[rel] = self.store.commit_table(rel, table)
                self.done_at[rel] = time.monotonic()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e


@pytest.fixture()
def outage_s3(monkeypatch):
    import boto3

    server = OutageS3Server()
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    bucket = f"outage-{os.urandom(4).hex()}"
    boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    yield server, bucket
    server.hook = None
    if server.running:
        server.stop()


def _small(i: int) -> pa.Table:
    return pa.table({"id": [f"s{i}-{j}" for j in range(200)], "x": list(range(200))})


def _big() -> pa.Table:
    # ~24 MB of incompressible bytes: pyarrow uploads it in several parts (multipart upload)
    return pa.table({"id": [f"b{j}" for j in range(24)], "blob": [os.urandom(1 << 20) for _ in range(24)]})


def test_s3_outage_during_commits(outage_s3):
    server, bucket = outage_s3
    store = RunStore(f"s3://{bucket}/{PREFIX}", RUN)
    shards = {f"candidates/part-{i:05d}.parquet": _small(i) for i in range(4)}
    big_rel = "candidates/part-00004.parquet"
    shards[big_rel] = _big()
    expected = {f"{PREFIX}/{RUN}/{rel}": hashlib.sha256(table_to_parquet_bytes(t)).hexdigest()
                for rel, t in shards.items()}
    rels = list(shards)
    watcher = VisibilityWatcher(server.endpoint, bucket, expected)
    part_arrived, release = threading.Event(), threading.Event()
    watcher.start()
    try:
        first = store.commit_table(rels[0], shards[rels[0]])  # committed before any outage
        assert first.created

        # Phase 1: the server is down before the commits start and for OUTAGE_S seconds.
        server.stop()
        assert server.refuses_connections()
        committer = Committer(store, {r: shards[r] for r in rels[1:4]})
        committer.start()
        time.sleep(OUTAGE_S)  # the fault's duration (not synchronisation)
        assert not committer.done_at, "a commit returned while the server was down"
        assert committer.is_alive() and committer.error is None
        server.start()
        up_at = time.monotonic()
        committer.join(timeout=180)
        assert not committer.is_alive(), "commits did not recover after the server came back"
        assert committer.error is None, repr(committer.error)
        assert all(t >= up_at for t in committer.done_at.values())
        recovered = [max(committer.done_at.values()) - up_at]
        assert all(info.created for info in committer.infos.values())

        # Phase 2: the server dies while a part of a multipart upload is in flight.
        def hold_first_part(environ):
            if ("partNumber=" in environ.get("QUERY_STRING", "") and environ["PATH_INFO"].endswith(big_rel)
                    and not part_arrived.is_set()):
                part_arrived.set()
                release.wait(60)

        server.hook = hold_first_part
        committer = Committer(store, {big_rel: shards[big_rel]})
        committer.start()
        assert part_arrived.wait(60), "the big shard was not uploaded in parts"
        probe = _client(server.endpoint)
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError, match="404|Not Found"):  # mid-upload: not visible
            probe.head_object(Bucket=bucket, Key=f"{PREFIX}/{RUN}/{big_rel}")
        server.stop()
        assert server.refuses_connections()
        time.sleep(OUTAGE_S)  # the fault's duration
        assert not committer.done_at
        server.hook = None
        server.start()
        up_at = time.monotonic()
        release.set()
        committer.join(timeout=180)
        assert not committer.is_alive(), "the multipart commit did not recover"
        assert committer.error is None, repr(committer.error)
        assert committer.done_at[big_rel] >= up_at and committer.infos[big_rel].created
        recovered.append(committer.done_at[big_rel] - up_at)

        # The watcher catches up with the last commit, then stops.
        deadline = time.monotonic() + 30
        while set(watcher.verified) < set(expected) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        release.set()
        watcher.stop_event.set()
        watcher.join(timeout=30)

    assert not watcher.violations, watcher.violations
    assert set(watcher.verified) == set(expected)
    assert watcher.failed_polls > 0 and watcher.ok_polls > 0  # it watched through outage and recovery

    # Final state: exactly the committed shards, complete; the pre-outage shard survived the restarts.
    assert store.list("candidates", ".parquet") == rels
    for rel, table in shards.items():
        assert store.read_table(rel).num_rows == table.num_rows
        stored = store.read_bytes(rel)
        assert hashlib.sha256(stored).hexdigest() == expected[f"{PREFIX}/{RUN}/{rel}"]
    # A rerun's commits find every shard in place and write nothing.
    assert not any(store.commit_table(rel, t).created for rel, t in shards.items())
    print(f"{len(shards)} shards committed through two {OUTAGE_S:.0f} s outages; watcher: {watcher.ok_polls} "
          f"listings, {watcher.failed_polls} refused, {len(watcher.verified)} objects read, 0 partial; "
          f"commits done {recovered[0]:.1f} s / {recovered[1]:.1f} s after the server came back")


def test_an_outage_longer_than_the_budget_fails_in_one_line(outage_s3, monkeypatch, caplog):
    """After first contact, retries ride out an outage for the outage budget, logged, then give up in one line."""
    server, bucket = outage_s3
    budget_s = 4.0
    monkeypatch.setenv(storage.OUTAGE_BUDGET_ENV, str(budget_s))
    store = RunStore(f"s3://{bucket}/{PREFIX}", RUN)  # first contact while the server is up
    server.stop()
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="metamath_ray.storage"), pytest.raises(StorageError) as caught:
        store.commit_table("candidates/part-00000.parquet", _small(0))
    elapsed = time.monotonic() - started
    message = str(caught.value)
    shard = f"s3://{bucket}/{PREFIX}/{RUN}/candidates/part-00000.parquet"
    assert "\n" not in message
    assert message.startswith(f"S3 unreachable: looking up {shard} at endpoint {server.endpoint} "
                              "(AWS_ENDPOINT_URL) failed ")
    assert message.endswith("Could not connect to server; check AWS_ENDPOINT_URL and that the store is up")
    retries = [r.getMessage() for r in caplog.records if r.name == "metamath_ray.storage"]
    assert len(retries) >= 2 and retries[0].startswith("attempt 1/4 failed, retrying in 0.5 s: looking up " + shard)
    assert budget_s - 2 < elapsed < budget_s + 2  # no try starts after the budget; one try takes < 1 s
    print(f"outage past a {budget_s:.0f} s budget: StorageError after {elapsed:.1f} s, {len(retries)} retries logged")
