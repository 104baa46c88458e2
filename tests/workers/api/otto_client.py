"""A stand-in for Ottoscaler's CI server, run as its own process: it imports ottoscaler.v1 code
that the test generated from proto/ottoscaler/v1 with grpc_tools.protoc (never devscale's),
makes one call and prints the answer as JSON lines (one per streamed message), or
{"error": code, "details": …} for a failed call.

    python otto_client.py GENERATED_DIR ADDRESS CA_FILE|- METHOD 'REQUEST_JSON'

The token, if any, comes from $OTTO_TOKEN and goes out as `authorization: Bearer …` metadata
(over TLS or plaintext alike, as Otto-handler would send it); CA_FILE "-" dials plaintext."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import grpc
from google.protobuf import json_format


def main() -> int:
    generated, address, ca, method, body = sys.argv[1:6]
    sys.path.insert(0, generated)
    import ottoscaler_pb2 as pb  # type: ignore[import-not-found]
    import ottoscaler_pb2_grpc as pb_grpc  # type: ignore[import-not-found]

    requests = {"ScaleUp": pb.ScaleRequest, "ScaleDown": pb.ScaleRequest,
                "GetWorkerStatus": pb.WorkerStatusRequest,
                "ExecutePipeline": pb.PipelineRequest}
    request = json_format.Parse(body, requests[method]())
    if ca == "-":
        channel = grpc.insecure_channel(address)
    else:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(
            Path(ca).read_bytes()))
    token = os.environ.get("OTTO_TOKEN")
    metadata = [("authorization", f"Bearer {token}")] if token else []
    stub = pb_grpc.OttoscalerServiceStub(channel)
    try:
        if method == "ExecutePipeline":
            for message in stub.ExecutePipeline(request, metadata=metadata, timeout=180):
                print(_json(message), flush=True)
        else:
            print(_json(getattr(stub, method)(request, metadata=metadata, timeout=60)))
    except grpc.RpcError as e:
        print(json.dumps({"error": e.code().name, "details": e.details()}), flush=True)
    finally:
        channel.close()
    return 0


def _json(message: object) -> str:
    return json.dumps(json_format.MessageToDict(
        message, preserving_proto_field_name=True,  # type: ignore[arg-type]
        always_print_fields_with_no_presence=True))


if __name__ == "__main__":
    sys.exit(main())
