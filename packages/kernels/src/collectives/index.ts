/**
 * Collectives between processes: the Communicator interface, the TCP transport (any backend,
 * CPU tests and CPU clusters) and the NCCL transport of the CUDA backend, with the TCP
 * rendezvous both use. See README.md, "Collectives".
 */
export { type NcclAvailability, NcclWorld, ncclAvailability } from "./nccl.js";
export { freeRendezvousPort } from "./port.js";
export {
  type RendezvousEntry,
  RendezvousError,
  type RendezvousResult,
  rendezvous,
} from "./rendezvous.js";
export { TcpCommunicator, TcpWorld, type TcpWorldOptions, type WorldInfo } from "./tcp.js";
export {
  type AllReduceOptions,
  CollectiveError,
  type Communicator,
  defaultCollectiveTimeoutMs,
  defaultRendezvousTimeoutMs,
  type ReduceOp,
  type TransportName,
} from "./types.js";
