// `provisioner serve` for the tests that start their own (cognito.test.ts, aws.test.ts):
// on a free port, ready once it has printed its admin token (the last line of start-up),
// stopped by the PID recorded at spawn.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Serve {
  url: string;
  process: ChildProcess;
  /** Its stderr, for the failure messages. */
  log: string[];
}

/** Runs `binary serve ...args` and resolves with its address once it is ready. */
export async function startServe(
  binary: string,
  args: string[],
  options: SpawnOptions,
  timeoutMs: number,
): Promise<Serve> {
  const child = spawn(binary, ['serve', ...args], { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => log.push(line));
  const url = await new Promise<string>((resolve, reject) => {
    let address: string | undefined;
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${log.join('\n')}`)), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code}):\n${log.join('\n')}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const listening = /^listening on (http:\/\/\S+)$/.exec(line);
      if (listening !== null) address = listening[1];
      if (line.startsWith('admin token') && address !== undefined) {
        clearTimeout(timer);
        resolve(address);
      }
    });
  });
  return { url, process: child, log };
}

export async function stopServe(serve: Serve): Promise<void> {
  if (serve.process.exitCode !== null || serve.process.pid === undefined) return;
  const exited = new Promise((resolve) => serve.process.once('exit', resolve));
  process.kill(serve.process.pid, 'SIGTERM'); // by the PID recorded at spawn
  await exited;
}
