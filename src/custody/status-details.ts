/**
 * The reason code of a failure, in the two places gRPC clients look for it:
 *   - trailing metadata `custody-reason: <CODE>` (readable from any client with no extra types);
 *   - `grpc-status-details-bin`: a google.rpc.Status whose details hold one google.rpc.ErrorInfo
 *     {reason: <CODE>, domain: "custody.v1"} (the richer error model of AIP-193).
 * Encoded by protobufjs (already in the tree under proto-loader) from the messages' .proto files in
 * proto/google/rpc/, as googleapis defines them, so the wire format is the library's, not ours.
 */
import { join } from "node:path";
import { Metadata } from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { PROTO_ROOT } from "../contract/proto.js";
import type { GrpcFailure } from "./errors.js";

export const REASON_METADATA_KEY = "custody-reason";
export const ERROR_DOMAIN = "custody.v1";
const ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";

const rpc = new protobuf.Root();
// google/protobuf/any.proto is one of protobufjs's bundled well-known types; ours are under PROTO_ROOT.
rpc.resolvePath = (_origin, target) =>
  target.startsWith("google/protobuf/") ? target : join(PROTO_ROOT, target);
rpc.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
const Status = rpc.lookupType("google.rpc.Status");
const ErrorInfo = rpc.lookupType("google.rpc.ErrorInfo");

export function encodeStatusDetails(failure: GrpcFailure): Buffer {
  const info = ErrorInfo.encode(ErrorInfo.create({ reason: failure.code, domain: ERROR_DOMAIN })).finish();
  const status = Status.create({
    code: failure.grpcStatus,
    message: failure.message,
    details: [{ type_url: ERROR_INFO_TYPE, value: info }],
  });
  return Buffer.from(Status.encode(status).finish());
}

export function failureMetadata(failure: GrpcFailure): Metadata {
  const metadata = new Metadata();
  metadata.set(REASON_METADATA_KEY, failure.code);
  metadata.set("grpc-status-details-bin", encodeStatusDetails(failure));
  return metadata;
}
