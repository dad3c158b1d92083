// Original file: proto/custody/v1/custody.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ReencryptForKnotRequest as _custody_v1_ReencryptForKnotRequest, ReencryptForKnotRequest__Output as _custody_v1_ReencryptForKnotRequest__Output } from '../../custody/v1/ReencryptForKnotRequest.js';
import type { ReencryptForKnotResponse as _custody_v1_ReencryptForKnotResponse, ReencryptForKnotResponse__Output as _custody_v1_ReencryptForKnotResponse__Output } from '../../custody/v1/ReencryptForKnotResponse.js';

export interface CardCustodyClient extends grpc.Client {
  /**
   * Decrypts Dotva's secrets_jwe inside custody, builds Knot's /card payload and encrypts it to
   * knot_jwk. Plaintext card data never leaves the custody process.
   */
  ReencryptForKnot(argument: _custody_v1_ReencryptForKnotRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_custody_v1_ReencryptForKnotResponse__Output>): grpc.ClientUnaryCall;
  ReencryptForKnot(argument: _custody_v1_ReencryptForKnotRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_custody_v1_ReencryptForKnotResponse__Output>): grpc.ClientUnaryCall;
  ReencryptForKnot(argument: _custody_v1_ReencryptForKnotRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_custody_v1_ReencryptForKnotResponse__Output>): grpc.ClientUnaryCall;
  ReencryptForKnot(argument: _custody_v1_ReencryptForKnotRequest, callback: grpc.requestCallback<_custody_v1_ReencryptForKnotResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Decrypts Dotva's secrets_jwe inside custody, builds Knot's /card payload and encrypts it to
   * knot_jwk. Plaintext card data never leaves the custody process.
   */
  reencryptForKnot(argument: _custody_v1_ReencryptForKnotRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_custody_v1_ReencryptForKnotResponse__Output>): grpc.ClientUnaryCall;
  reencryptForKnot(argument: _custody_v1_ReencryptForKnotRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_custody_v1_ReencryptForKnotResponse__Output>): grpc.ClientUnaryCall;
  reencryptForKnot(argument: _custody_v1_ReencryptForKnotRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_custody_v1_ReencryptForKnotResponse__Output>): grpc.ClientUnaryCall;
  reencryptForKnot(argument: _custody_v1_ReencryptForKnotRequest, callback: grpc.requestCallback<_custody_v1_ReencryptForKnotResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface CardCustodyHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Decrypts Dotva's secrets_jwe inside custody, builds Knot's /card payload and encrypts it to
   * knot_jwk. Plaintext card data never leaves the custody process.
   */
  ReencryptForKnot: grpc.handleUnaryCall<_custody_v1_ReencryptForKnotRequest__Output, _custody_v1_ReencryptForKnotResponse>;
  
}

export interface CardCustodyDefinition extends grpc.ServiceDefinition {
  ReencryptForKnot: MethodDefinition<_custody_v1_ReencryptForKnotRequest, _custody_v1_ReencryptForKnotResponse, _custody_v1_ReencryptForKnotRequest__Output, _custody_v1_ReencryptForKnotResponse__Output>
}
