"""What the remote path (``hhrt serve`` + PoseClient) costs against a local ``PoseEstimator.predict``.

On a local Ray cluster (127.0.0.1), with the same model in the replica and in this process, on a 640x480
JPEG frame (the golden pipeline image):

1. latency: ``predict`` locally vs ``PoseClient.predict`` one request at a time (p50 / p90 ms); the
   difference is the overhead of the remote path (encode, HTTP through Serve's proxy, the replica's
   batching wait, decode of the image, JSON back).
2. bytes per frame each way (request body; JSON answer).
3. throughput with 1 and 2 replicas: ``--requests`` frames from ``--clients`` threads at once.

On a 2-core machine two replicas only share the same two cores: the figure shows the mechanism (requests
spread over replicas, batches formed), not a speed-up. Take figures on a quiet machine.

Usage:
    python benchmarks/bench_serve.py                                  # golden tiny model, input 512
    python benchmarks/bench_serve.py --input-size 64 --requests 16 --repeats 5   # a quick check
"""

from __future__ import annotations

import argparse
import datetime
import platform
import socket
import time
from pathlib import Path

import cv2
import numpy as np

GOLDEN = Path(__file__).resolve().parents[1] / ".." / "shared" / "golden"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ms(samples: list[float]) -> str:
    p50, p90 = np.percentile(np.asarray(samples) * 1e3, [50, 90])
    return f"{p50:7.1f} / {p90:7.1f}"


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(GOLDEN / "tiny_model.npz"))
    parser.add_argument("--input-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20, help="one-at-a-time requests for the latency")
    parser.add_argument("--requests", type=int, default=64, help="frames per throughput run")
    parser.add_argument("--clients", type=int, default=8, help="requests in flight in the throughput runs")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--torch-threads", type=int, default=1, help="per replica and for the local model")
    args = parser.parse_args()

    import torch

    from hhrnet_rt.runtime.estimator import PoseEstimator
    from hhrnet_rt.serve import PoseClient, ServeSettings, start_server, stop_server
    from hhrnet_rt.serve.server import require_ray

    ray, serve = require_ray(loopback=True)  # the local cluster's nodes and ports stay on 127.0.0.1

    torch.set_num_threads(args.torch_threads)
    with np.load(GOLDEN / "pipeline_case.npz") as z:
        image = np.ascontiguousarray(z["image_rgb_uint8"][..., ::-1])  # 480x640 BGR
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    frame = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)  # what the server decodes: local and remote see the same
    options = {"weights": args.weights, "input_size": args.input_size, "backend": "torch", "device": "cpu"}
    local = PoseEstimator(options["weights"], input_size=args.input_size, backend="torch", device="cpu")
    local.predict(frame)
    local_s = _timed(lambda: local.predict(frame), args.repeats)

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    rows = []
    try:
        settings = ServeSettings(max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms)
        for replicas in (1, 2):
            if replicas > 1:  # Serve's proxy holds the first run's port: a fresh Serve on a fresh port
                stop_server(shutdown_ray=False)
                serve.shutdown()
            port = _free_port()
            url = start_server(options, settings, port=port, replicas=replicas, cpus_per_replica=0.5,
                               torch_threads=args.torch_threads)  # fmt: skip
            client = PoseClient(url, image_format="jpeg")
            client.predict_encoded(jpeg.tobytes())  # warm: connection, replica's first call
            if replicas == 1:
                sent0, received0 = client.bytes_sent, client.bytes_received
                remote_s = _timed(lambda c=client: c.predict_encoded(jpeg.tobytes()), args.repeats)
                per_frame = (
                    (client.bytes_sent - sent0) / args.repeats,
                    (client.bytes_received - received0) / args.repeats,
                )
            else:
                for _ in range(2 * replicas):  # each replica's first call
                    client.predict_batch([frame] * args.clients, concurrency=args.clients)
            t0 = time.perf_counter()
            client.predict_batch([frame] * args.requests, concurrency=args.clients)
            rows.append((replicas, args.requests / (time.perf_counter() - t0)))
    finally:
        stop_server()

    print(
        f"# bench_serve  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  {platform.processor() or platform.machine()}"
    )
    print(f"model {Path(args.weights).name}, input {args.input_size}, frame 640x480 JPEG q95, torch threads {args.torch_threads}, "
          f"max batch {args.max_batch}, batch wait {args.batch_wait_ms} ms")  # fmt: skip
    print("\n| path | p50 / p90 ms |\n|---|---|")
    print(f"| local predict | {_ms(local_s)} |")
    print(f"| PoseClient.predict (1 replica, one at a time) | {_ms(remote_s)} |")
    overhead = np.median(remote_s) - np.median(local_s)
    print(f"\nremote overhead (p50 difference): {overhead * 1e3:.1f} ms per request")
    print(f"bytes per frame: {per_frame[0]:.0f} up (JPEG), {per_frame[1]:.0f} down (JSON)")
    print(f"\n| replicas | frames/s ({args.requests} frames, {args.clients} in flight) |\n|---|---|")
    for replicas, fps in rows:
        print(f"| {replicas} | {fps:.1f} |")


if __name__ == "__main__":
    main()
