"""A generic gRPC client that knows no Camut types: lists the services through server
reflection, then calls camut.v1.Campaigns/ListCampaigns from the descriptors it fetched.

Usage: python3 reflect.py HOST:PORT [TOKEN]
Prints one line per service, then `campaigns: N` and the ids.
"""
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main():
    addr = sys.argv[1]
    token = sys.argv[2] if len(sys.argv) > 2 else ""
    channel = grpc.insecure_channel(addr)
    db = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(db.get_services())
    for s in services:
        print(f"service {s}")
    pool = descriptor_pool.DescriptorPool(db)
    method = pool.FindServiceByName("camut.v1.Campaigns").methods_by_name["ListCampaigns"]
    req_cls = message_factory.GetMessageClass(method.input_type)
    resp_cls = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        "/camut.v1.Campaigns/ListCampaigns",
        request_serializer=req_cls.SerializeToString,
        response_deserializer=resp_cls.FromString,
    )
    metadata = [("authorization", f"Bearer {token}")] if token else []
    resp = call(req_cls(), metadata=metadata, timeout=10)
    print(f"campaigns: {len(resp.campaigns)}")
    state = resp_cls.DESCRIPTOR.fields_by_name["campaigns"].message_type.fields_by_name["state"]
    for c in resp.campaigns:
        name = state.enum_type.values_by_number[c.state].name
        print(f"campaign {c.id} {name.removeprefix('CAMPAIGN_STATE_').lower()}")


if __name__ == "__main__":
    main()
