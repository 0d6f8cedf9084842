"""A client generated from proto/ by the standard compiler (grpcio-tools), driving a
campaign's whole workflow: new, spawn, deploy, start, results, kill, del.

Usage: python3 workflow_client.py GENERATED_DIR SERVER CAMPAIGN_FILE
           [--token TOKEN] [--cacert PEM_FILE]

GENERATED_DIR is where the code is generated (created when missing); SERVER is
host:port. With --cacert the channel is TLS, trusting that certificate. Prints one
line per step, then the results as one JSON line `results {...}`; exits 1 when a job
fails.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def generate(out):
    """Compiles proto/camut/v1/*.proto into `out` with grpc_tools.protoc."""
    os.makedirs(out, exist_ok=True)
    proto_dir = os.path.join(REPO, "proto")
    files = sorted(
        os.path.join("camut", "v1", f)
        for f in os.listdir(os.path.join(proto_dir, "camut", "v1"))
        if f.endswith(".proto")
    )
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir,
         f"--python_out={out}", f"--grpc_python_out={out}", *files],
        check=True,
    )
    sys.path.insert(0, out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("generated")
    parser.add_argument("server")
    parser.add_argument("campaign")
    parser.add_argument("--token", default="")
    parser.add_argument("--cacert")
    args = parser.parse_args()
    generate(args.generated)

    import grpc
    from camut.v1 import campaigns_pb2, campaigns_pb2_grpc, jobs_pb2, jobs_pb2_grpc

    if args.cacert:
        with open(args.cacert, "rb") as f:
            channel = grpc.secure_channel(args.server, grpc.ssl_channel_credentials(f.read()))
    else:
        channel = grpc.insecure_channel(args.server)
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    campaigns = campaigns_pb2_grpc.CampaignsStub(channel)
    jobs = jobs_pb2_grpc.JobsStub(channel)

    def wait(job, what):
        deadline = time.monotonic() + 120
        final = (jobs_pb2.JOB_STATE_COMPLETE, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)
        while job.state not in final:
            if time.monotonic() > deadline:
                sys.exit(f"{what}: job {job.id} did not end")
            time.sleep(0.2)
            job = jobs.GetJob(jobs_pb2.JobRef(id=job.id), metadata=metadata, timeout=10)
        state = jobs_pb2.JobState.Name(job.state)
        print(f"{what} {state}", flush=True)
        if job.state != jobs_pb2.JOB_STATE_COMPLETE:
            sys.exit(f"{what} ended {state}: {job.error}")

    with open(args.campaign) as f:
        source = f.read()
    created = campaigns.CreateCampaign(
        campaigns_pb2.CreateCampaignRequest(file=os.path.basename(args.campaign), source=source),
        metadata=metadata, timeout=30,
    )
    print(f"new {created.id}", flush=True)
    ref = campaigns_pb2.CampaignRef(id=created.id)
    wait(campaigns.Spawn(ref, metadata=metadata, timeout=10), "spawn")
    wait(campaigns.Deploy(ref, metadata=metadata, timeout=10), "deploy")
    wait(campaigns.Start(ref, metadata=metadata, timeout=10), "start")
    results = campaigns.Results(ref, metadata=metadata, timeout=10)
    print("results " + json.dumps({
        "id": results.id,
        "state": campaigns_pb2.CampaignState.Name(results.state),
        "requests": results.summary.requests,
        "errors": results.summary.errors,
        "drones": len(results.drones),
        "thresholds_ok": results.thresholds_ok,
    }), flush=True)
    wait(campaigns.Kill(ref, metadata=metadata, timeout=10), "kill")
    campaigns.DeleteCampaign(ref, metadata=metadata, timeout=10)
    try:
        campaigns.GetCampaign(ref, metadata=metadata, timeout=10)
        sys.exit("the campaign is still there after del")
    except grpc.RpcError as e:
        print(f"del {e.code().name}", flush=True)


if __name__ == "__main__":
    main()
