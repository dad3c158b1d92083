import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { CardCustodyClient as _custody_v1_CardCustodyClient, CardCustodyDefinition as _custody_v1_CardCustodyDefinition } from './custody/v1/CardCustody.js';
import type { KnotAddress as _custody_v1_KnotAddress, KnotAddress__Output as _custody_v1_KnotAddress__Output } from './custody/v1/KnotAddress.js';
import type { KnotName as _custody_v1_KnotName, KnotName__Output as _custody_v1_KnotName__Output } from './custody/v1/KnotName.js';
import type { KnotUser as _custody_v1_KnotUser, KnotUser__Output as _custody_v1_KnotUser__Output } from './custody/v1/KnotUser.js';
import type { ReencryptForKnotRequest as _custody_v1_ReencryptForKnotRequest, ReencryptForKnotRequest__Output as _custody_v1_ReencryptForKnotRequest__Output } from './custody/v1/ReencryptForKnotRequest.js';
import type { ReencryptForKnotResponse as _custody_v1_ReencryptForKnotResponse, ReencryptForKnotResponse__Output as _custody_v1_ReencryptForKnotResponse__Output } from './custody/v1/ReencryptForKnotResponse.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  custody: {
    v1: {
      CardCustody: SubtypeConstructor<typeof grpc.Client, _custody_v1_CardCustodyClient> & { service: _custody_v1_CardCustodyDefinition }
      KnotAddress: MessageTypeDefinition<_custody_v1_KnotAddress, _custody_v1_KnotAddress__Output>
      KnotName: MessageTypeDefinition<_custody_v1_KnotName, _custody_v1_KnotName__Output>
      KnotUser: MessageTypeDefinition<_custody_v1_KnotUser, _custody_v1_KnotUser__Output>
      ReencryptForKnotRequest: MessageTypeDefinition<_custody_v1_ReencryptForKnotRequest, _custody_v1_ReencryptForKnotRequest__Output>
      ReencryptForKnotResponse: MessageTypeDefinition<_custody_v1_ReencryptForKnotResponse, _custody_v1_ReencryptForKnotResponse__Output>
    }
  }
}

