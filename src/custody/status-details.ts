/**
 * The reason code of a failure, in the two places gRPC clients look for it:
 *   - trailing metadata `custody-reason: <CODE>` (readable from any client with no extra types);
 *   - `grpc-status-details-bin`: a google.rpc.Status whose details hold one google.rpc.ErrorInfo
 *     {reason: <CODE>, domain: "custody.v1"} (the richer error model of AIP-193).
 * Encoded by hand: three tiny messages, not worth a protobuf runtime on this path.
 */
import { Metadata } from "@grpc/grpc-js";
import type { GrpcFailure } from "./errors.js";

export const REASON_METADATA_KEY = "custody-reason";
export const ERROR_DOMAIN = "custody.v1";
const ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";

function varint(n: number): Buffer {
  const bytes: number[] = [];
  let v = n >>> 0;
  while (v > 0x7f) {
    bytes.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

function lengthDelimited(field: number, value: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(value.length), value]);
}

function text(field: number, value: string): Buffer {
  return lengthDelimited(field, Buffer.from(value, "utf8"));
}

export function encodeStatusDetails(failure: GrpcFailure): Buffer {
  const errorInfo = Buffer.concat([text(1, failure.code), text(2, ERROR_DOMAIN)]);
  const any = Buffer.concat([text(1, ERROR_INFO_TYPE), lengthDelimited(2, errorInfo)]);
  return Buffer.concat([
    varint((1 << 3) | 0),
    varint(failure.grpcStatus),
    text(2, failure.message),
    lengthDelimited(3, any),
  ]);
}

export function failureMetadata(failure: GrpcFailure): Metadata {
  const metadata = new Metadata();
  metadata.set(REASON_METADATA_KEY, failure.code);
  metadata.set("grpc-status-details-bin", encodeStatusDetails(failure));
  return metadata;
}
