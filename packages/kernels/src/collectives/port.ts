/**
 * A free TCP port for a rendezvous that one machine starts by itself (the trainer's
 * single-node launcher, the tests). Asking the OS for an ephemeral port (listen on 0, close,
 * reuse the number) races: the number comes from the range the OS also hands out as the local
 * port of outgoing connections (32768-60999 on Linux), so before rank 0 listens another
 * connection can take it, which CI hit ("port ... is in use") with the collectives and
 * multi-process tests running in parallel. Ports are drawn instead at random from below that
 * range, each checked by listening on it.
 */
import { createServer } from "node:net";

const LOW = 20_000;
const HIGH = 32_000; // below Linux's default ip_local_port_range

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

export async function freeRendezvousPort(host = "127.0.0.1", attempts = 50): Promise<number> {
  for (let i = 0; i < attempts; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (await canListen(host, port)) return port;
  }
  throw new Error(
    `no free port on ${host} in [${LOW}, ${HIGH}) after ${attempts} attempts: pass --master-port`,
  );
}
