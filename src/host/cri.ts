// Container and pod metadata from the container runtime, over the
// Kubernetes CRI (runtime.v1.RuntimeService, proto/k8s.io/cri-api/...):
// the pod's name, namespace and labels, the container's name and image.
//
// An event never waits for the runtime: current() answers from what is
// cached and, for a container it has not heard of, asks in the background
// (ContainerStatus, then PodSandboxStatus once per pod); the process cache
// picks up the answer for the process's next event. The whole list is
// refreshed in the background (ListContainers) so a container is usually
// known before its first event. When the runtime is gone or slow, calls
// fail after their deadline in the background, what was learnt stays
// cached, and events carry the ids from their cgroup paths alone (both
// tetragon #2639 and falco #3243 were metadata lost or stalled on this
// road).
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from '../common/log';
import type { ContainerDirectory } from './attribution';
import type { ContainerInfo } from './container';

const CRI_PROTO = 'k8s.io/cri-api/pkg/apis/runtime/v1/api.proto';
const PROTO_DIR = path.resolve(__dirname, '..', '..', '..', 'proto');

/** The fields of CRI messages read here (proto-loader objects, keepCase). */
interface CriContainer {
  id: string;
  pod_sandbox_id: string;
  metadata?: { name: string } | null;
  image?: { image: string } | null;
}
interface CriSandbox {
  id: string;
  metadata?: { name: string; uid: string; namespace: string } | null;
  labels?: Record<string, string> | null;
}
type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;
interface RuntimeClient extends grpc.Client {
  ListContainers(req: object, opts: grpc.CallOptions, cb: Callback<{ containers: CriContainer[] }>): void;
  ContainerStatus(req: { container_id: string }, opts: grpc.CallOptions, cb: Callback<{ status?: CriContainer & { metadata?: { name: string } } }>): void;
  PodSandboxStatus(req: { pod_sandbox_id: string }, opts: grpc.CallOptions, cb: Callback<{ status?: CriSandbox }>): void;
}

/** Loaded at start-up with the rest of the daemon: nothing is read from disk once marks exist. */
function runtimeServiceClient(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync(CRI_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [PROTO_DIR] });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } } };
  return pkg.runtime.v1.RuntimeService;
}

export interface CriOptions {
  /** Each call's deadline. */
  callTimeoutMs?: number;
  /** How often the whole list is asked for. */
  refreshMs?: number;
}

interface Meta {
  sandboxId: string;
  name: string;
  image: string;
}

export class CriDirectory implements ContainerDirectory {
  private readonly client: RuntimeClient;
  private readonly containers = new Map<string, Meta>();
  private readonly sandboxes = new Map<string, CriSandbox>();
  /** Ids asked about and not answered yet, so a busy container is asked once. */
  private readonly asking = new Set<string>();
  /** The object handed out per container id, with what it was built from: the same one while nothing changed. */
  private readonly built = new Map<string, { base: ContainerInfo; meta: Meta; sandbox?: CriSandbox; out: ContainerInfo }>();
  private readonly timer: NodeJS.Timeout;
  private readonly callTimeoutMs: number;
  /** The runtime answered the last call (false: say so once, then again when it is back). */
  private up = true;

  constructor(
    readonly endpoint: string,
    private readonly log: Logger,
    opts: CriOptions = {},
  ) {
    const Ctor = runtimeServiceClient();
    this.client = new Ctor(endpoint, grpc.credentials.createInsecure()) as unknown as RuntimeClient;
    this.callTimeoutMs = opts.callTimeoutMs ?? 2000;
    this.timer = setInterval(() => this.refresh(), opts.refreshMs ?? 10_000);
    this.timer.unref();
    this.refresh();
  }

  current(c: ContainerInfo): ContainerInfo {
    const meta = this.containers.get(c.id);
    if (!meta) {
      this.ask(c.id);
      return c;
    }
    const sandbox = this.sandboxes.get(meta.sandboxId);
    const b = this.built.get(c.id);
    if (b && b.base === c && b.meta === meta && b.sandbox === sandbox) return b.out;
    const out: ContainerInfo = { ...c, name: meta.name, image: meta.image };
    if (sandbox?.metadata) {
      out.podName = sandbox.metadata.name;
      out.podNamespace = sandbox.metadata.namespace;
      if (!out.podUid) out.podUid = sandbox.metadata.uid;
    }
    if (sandbox?.labels) out.labels = { ...sandbox.labels };
    this.built.set(c.id, { base: c, meta, sandbox, out });
    return out;
  }

  close(): void {
    clearInterval(this.timer);
    this.client.close();
  }

  private deadline(): grpc.CallOptions {
    return { deadline: Date.now() + this.callTimeoutMs };
  }

  /** Note whether the runtime answers; a change is logged once. */
  private answered(err: grpc.ServiceError | null): boolean {
    const ok = !err || err.code === grpc.status.NOT_FOUND;
    if (ok !== this.up) {
      this.up = ok;
      if (ok) this.log.info('container runtime answers again', { cri_endpoint: this.endpoint });
      else this.log.warn('container runtime does not answer; events carry container ids from cgroup paths only', { cri_endpoint: this.endpoint, error: err?.details ?? String(err) });
    }
    return !err;
  }

  private learn(c: CriContainer): void {
    const meta: Meta = { sandboxId: c.pod_sandbox_id, name: c.metadata?.name ?? '', image: c.image?.image ?? '' };
    const old = this.containers.get(c.id);
    if (!old || old.sandboxId !== meta.sandboxId || old.name !== meta.name || old.image !== meta.image) this.containers.set(c.id, meta);
    if (meta.sandboxId && !this.sandboxes.has(meta.sandboxId)) this.askSandbox(meta.sandboxId);
  }

  private refresh(): void {
    this.client.ListContainers({}, this.deadline(), (err, res) => {
      if (!this.answered(err) || !res) return;
      const live = new Set<string>();
      for (const c of res.containers) {
        live.add(c.id);
        this.learn(c);
      }
      // Forget containers that are gone, and pods without containers.
      for (const id of this.containers.keys()) {
        if (live.has(id)) continue;
        this.containers.delete(id);
        this.built.delete(id);
      }
      const pods = new Set([...this.containers.values()].map((m) => m.sandboxId));
      for (const id of this.sandboxes.keys()) if (!pods.has(id)) this.sandboxes.delete(id);
    });
  }

  private ask(id: string): void {
    if (this.asking.has(id) || !this.up) return;
    this.asking.add(id);
    this.client.ContainerStatus({ container_id: id }, this.deadline(), (err, res) => {
      this.asking.delete(id);
      if (!this.answered(err) || !res?.status) return;
      // ContainerStatus does not name the pod: ListContainers with the id does.
      this.client.ListContainers({ filter: { id } }, this.deadline(), (e2, list) => {
        if (!this.answered(e2)) return;
        for (const c of list?.containers ?? []) if (c.id === id) this.learn(c);
      });
    });
  }

  private askSandbox(id: string): void {
    const key = `pod:${id}`;
    if (this.asking.has(key)) return;
    this.asking.add(key);
    this.client.PodSandboxStatus({ pod_sandbox_id: id }, this.deadline(), (err, res) => {
      this.asking.delete(key);
      if (this.answered(err) && res?.status) this.sandboxes.set(id, res.status);
    });
  }
}
