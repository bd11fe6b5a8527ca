/**
 * A real Kubernetes control plane without nodes, as envtest runs one: etcd and kube-apiserver
 * (both built from the Go module proxy, see go-tools.ts) on loopback ports, a static admin token,
 * RBAC authorization and the default admission plugins. Nothing schedules pods; everything the
 * API server itself decides (schemas, strict field validation, admission, RBAC) is real.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, Agent } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { goModuleDir, goTool, KNATIVE_MODULE_VERSION, PROMETHEUS_OPERATOR_VERSION } from './go-tools.js';

export interface ApiResponse {
  status: number;
  body: any;
  /** `Warning` headers: deprecations, Pod Security violations, ... */
  warnings: string[];
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  url: string;
  /** A kubeconfig file for clients such as helm: the admin token, the serving certificate as CA. */
  kubeconfig: string;
  request(method: string, path: string, body?: unknown, contentType?: string): Promise<ApiResponse>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Keeps the last lines a process printed, to explain a failed start. */
function tail(child: ChildProcess): () => string {
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString().split('\n').filter(Boolean));
    lines.splice(0, Math.max(0, lines.length - 30));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => lines.join('\n');
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * KEDA release whose CRDs (ScaledObject, TriggerAuthentication, ClusterTriggerAuthentication) the
 * checks install: only its module's files are downloaded (about 3 MB), nothing is built. v2.21.1,
 * the newest served, declares go 1.27.4, which `go mod download` will not unpack with Go 1.26.
 */
export const KEDA_VERSION = 'v2.21.0';

/** KEDA's CRDs as its release installs them (config/crd/bases of its module); ScaledJob and the eventing.keda.sh kinds are left out. */
export async function kedaCrdFiles(): Promise<string[]> {
  const keda = await goModuleDir('github.com/kedacore/keda/v2', KEDA_VERSION);
  return ['keda.sh_scaledobjects.yaml', 'keda.sh_triggerauthentications.yaml', 'keda.sh_clustertriggerauthentications.yaml'].map((f) =>
    join(keda, 'config/crd/bases', f),
  );
}

/**
 * Every CRD the charts' objects need: Knative Serving and Eventing (what serving-crds.yaml and
 * eventing-crds.yaml of the release contain), the Prometheus Operator's PodMonitor, PrometheusRule
 * and ServiceMonitor, and KEDA's. Downloads only (module zips through the Go module proxy).
 */
export async function chartCrdFiles(): Promise<string[]> {
  // As cluster.ts's yamlFiles, which this file does not import (cluster.ts brings in the charts' code).
  const yamlFiles = (dir: string, match: (name: string) => boolean = () => true) =>
    readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f) && match(f))
      .map((f) => join(dir, f));
  const [serving, eventing, prometheusOperator, keda] = await Promise.all([
    goModuleDir('knative.dev/serving', KNATIVE_MODULE_VERSION),
    goModuleDir('knative.dev/eventing', KNATIVE_MODULE_VERSION),
    goModuleDir('github.com/prometheus-operator/prometheus-operator', PROMETHEUS_OPERATOR_VERSION),
    kedaCrdFiles(),
  ]);
  return [
    ...yamlFiles(join(serving, 'config/core/300-resources')),
    ...yamlFiles(join(eventing, 'config/core/resources')),
    ...yamlFiles(join(prometheusOperator, 'example/prometheus-operator-crd'), (f) => /podmonitors|prometheusrules|servicemonitors/.test(f)),
    ...keda,
  ];
}

export async function startControlPlane(): Promise<ControlPlane> {
  const [etcdBin, apiserverBin] = await Promise.all([goTool('etcd'), goTool('kube-apiserver')]);
  const dir = mkdtempSync(join(tmpdir(), 'control-plane-'));
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.map(stopProcess));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [clientPort, peerPort, securePort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const etcd = spawn(etcdBin, [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      // A throwaway store: durability only costs time here.
      '--unsafe-no-fsync',
      '--log-level=error',
    ]);
    children.push(etcd);
    const etcdOutput = tail(etcd);

    const token = randomBytes(24).toString('hex');
    writeFileSync(join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n`);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));

    const apiserver = spawn(apiserverBin, [
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${join(dir, 'certs')}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${securePort}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--authorization-mode=RBAC',
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      // No nodes and a loopback address: the `kubernetes` Service's endpoints would be refused.
      '--endpoint-reconciler-type=none',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      '--v=0',
    ]);
    children.push(apiserver);
    const apiserverOutput = tail(apiserver);

    const url = `https://127.0.0.1:${securePort}`;
    let agent: Agent | undefined;
    const request = (method: string, path: string, body?: unknown, contentType = 'application/json') =>
      new Promise<ApiResponse>((resolve, reject) => {
        const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
        const req = httpsRequest(
          `${url}${path}`,
          {
            method,
            agent,
            headers: {
              Authorization: `Bearer ${token}`,
              Accept: 'application/json',
              ...(payload === undefined ? {} : { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(payload) }),
            },
            timeout: 30_000,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString();
              let parsed: unknown = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                // Plain-text answers (/readyz) stay text.
              }
              const warning = res.headers['warning'];
              resolve({ status: res.statusCode ?? 0, body: parsed, warnings: warning === undefined ? [] : [warning].flat() });
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
        req.on('error', reject);
        req.end(payload);
      });

    const deadline = Date.now() + 120_000;
    for (;;) {
      for (const [name, child, output] of [['etcd', etcd, etcdOutput], ['kube-apiserver', apiserver, apiserverOutput]] as const) {
        if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}:\n${output()}`);
      }
      try {
        // The serving certificate is self-signed and written at start; trust exactly it.
        agent ??= new Agent({ ca: readFileSync(join(dir, 'certs', 'apiserver.crt')), keepAlive: true });
        const ready = await request('GET', '/readyz');
        if (ready.status === 200) break;
      } catch {
        // Not listening (or no certificate) yet.
      }
      if (Date.now() > deadline) throw new Error(`kube-apiserver not ready in 120 s:\n${apiserverOutput()}`);
      await sleep(250);
    }
    const kubeconfig = join(dir, 'kubeconfig');
    const ca = readFileSync(join(dir, 'certs', 'apiserver.crt')).toString('base64');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'envtest', cluster: { server: url, 'certificate-authority-data': ca } }],
        users: [{ name: 'admin', user: { token } }],
        contexts: [{ name: 'envtest', context: { cluster: 'envtest', user: 'admin' } }],
        'current-context': 'envtest',
      }),
      { mode: 0o600 },
    );
    return {
      url,
      kubeconfig,
      request,
      stop: async () => {
        agent?.destroy();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
