import type { ConnectRouter } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { FaceService } from "../../gen/face/v1/face_pb.js";

/** Says whether the service can answer now (the database is reachable). */
export type ReadinessProbe = () => Promise<boolean>;

/** Services the health endpoint knows: "" is the server as a whole. */
const KNOWN_SERVICES = ["", FaceService.typeName];
/** How often Watch re-checks and reports a change. */
const WATCH_INTERVAL_MS = 5_000;

/** The standard gRPC health service (grpc.health.v1.Health): Check, List and Watch. */
export function createHealthRoutes(ready: ReadinessProbe): (router: ConnectRouter) => void {
  const statusNow = async () => ((await ready().catch(() => false)) ? Status.SERVING : Status.NOT_SERVING);
  return (router) => {
    router.service(Health, {
      async check(req) {
        if (!KNOWN_SERVICES.includes(req.service)) throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
        return { status: await statusNow() };
      },
      async list() {
        const status = await statusNow();
        return { statuses: Object.fromEntries(KNOWN_SERVICES.map((s) => [s, { status }])) };
      },
      async *watch(req, context) {
        if (!KNOWN_SERVICES.includes(req.service)) {
          yield { status: Status.SERVICE_UNKNOWN };
          return;
        }
        let last: Status | undefined;
        while (!context.signal.aborted) {
          const status = await statusNow();
          if (status !== last) yield { status };
          last = status;
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, WATCH_INTERVAL_MS);
            context.signal.addEventListener("abort", () => { clearTimeout(timer); resolve(undefined); }, { once: true });
          });
        }
      },
    });
  };
}
