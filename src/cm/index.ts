/** kbypass/cm: the connection manager (rdma_cm's model) for kbypass/verbs. */
export {
  listen, connect, initQp, CmListener, CmConnection, ConnectRequest, CmError, CM_UDP_QKEY,
  type CmConnectionOptions, type CmListenOptions, type CmPeer, type CmRejectReasonName,
} from './cm';
