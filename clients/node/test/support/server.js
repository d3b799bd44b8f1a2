'use strict';
// Starts a real chatwire server on 127.0.0.1:0 for the tests and stops it after.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const REPO = path.resolve(__dirname, '..', '..', '..', '..');

function chatwireBin() {
  const bin = process.env.CHATWIRE_BIN || path.join(REPO, 'target', 'debug', 'chatwire');
  if (!fs.existsSync(bin)) {
    throw new Error(`no chatwire binary at ${bin}: run \`cargo build\` or set CHATWIRE_BIN`);
  }
  return bin;
}

/**
 * Starts chatwire with `configToml` and `env`; resolves to
 * {addr, stop(), logs()} once it logged the address it listens on.
 */
async function startServer({ configToml = '', env = {}, timeoutMs = 30000 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatwire-node-test-'));
  const config = path.join(dir, 'chatwire.toml');
  fs.writeFileSync(config, configToml);
  const child = spawn(chatwireBin(), ['--addr', '127.0.0.1:0', '--config', config, '--log-format', 'json'], {
    env: { PATH: process.env.PATH, RUST_LOG: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chatwire did not start in ${timeoutMs} ms:\n${lines.join('\n')}`)), timeoutMs);
    const onLine = (line) => {
      lines.push(line);
      if (lines.length > 2000) lines.shift();
      try {
        const j = JSON.parse(line);
        if (j.fields && j.fields.message === 'chatwire serving') {
          clearTimeout(timer);
          resolve(j.fields.addr);
        }
      } catch {
        // not a JSON log line
      }
    };
    readline.createInterface({ input: child.stdout }).on('line', onLine);
    readline.createInterface({ input: child.stderr }).on('line', onLine);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chatwire exited (${code}) before serving:\n${lines.join('\n')}`));
    });
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    addr,
    logs: () => lines.slice(),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { startServer };
