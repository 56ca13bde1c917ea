#!/usr/bin/env node
// Launcher for the native ktx binary. No dependencies: runs on a bare Node >= 18.
// It forwards argv, stdio, the exit code and signals, so `npx ktx` behaves like the binary.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");
const fs = require("node:fs");

// platform-arch pairs this package ships a binary for (keep in sync with `cargo xtask pack-npm`).
const SUPPORTED = ["linux-x64"];

function main() {
  const target = `${process.platform}-${process.arch}`;
  const packageRoot = path.resolve(__dirname, "..");
  const exe = process.platform === "win32" ? "ktx.exe" : "ktx";
  const binary = path.join(packageRoot, "native", target, exe);

  if (!SUPPORTED.includes(target) || !fs.existsSync(binary)) {
    process.stderr.write(
      `ktx: no native binary for ${target} in this package.\n` +
        `Supported platforms: ${SUPPORTED.join(", ")}.\n` +
        `Please report your platform at https://github.com/kaelio/ktx/issues\n`
    );
    process.exit(1);
  }

  const env = { ...process.env, KTX_ASSET_DIR: path.join(packageRoot, "python") };
  const child = spawn(binary, process.argv.slice(2), { stdio: "inherit", env });

  // Forward the signals a terminal or supervisor sends; the child decides how to die.
  const forwarded = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
  const handlers = {};
  for (const sig of forwarded) {
    handlers[sig] = () => {
      try {
        child.kill(sig);
      } catch (_) {
        // child already gone
      }
    };
    process.on(sig, handlers[sig]);
  }

  child.on("error", (err) => {
    process.stderr.write(`ktx: failed to start ${binary}: ${err.message}\n`);
    process.exit(1);
  });

  child.on("exit", (code, signal) => {
    if (signal) {
      // Die of the same signal so our parent sees what really happened (not exit 0).
      for (const sig of forwarded) process.removeListener(sig, handlers[sig]);
      process.kill(process.pid, signal);
      // If the signal did not end us (ignored or not deliverable), use the shell convention.
      const num = require("node:os").constants.signals[signal] || 0;
      process.exit(128 + num);
    }
    process.exit(code === null ? 1 : code);
  });
}

main();
