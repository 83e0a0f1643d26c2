#!/usr/bin/env node
// The `tabr-serve` executable: sizes libuv's thread pool, then starts the CLI (cli.ts).
// The pool runs every native inference (one thread for a whole extraction) and the upload
// writes, and its size is fixed when its first task is queued; in an ES-module program that
// happens while the modules load, before any of their code runs. This CommonJS entry runs
// first, so it can still set UV_THREADPOOL_SIZE from the settings the service will admit with
// (an explicit UV_THREADPOOL_SIZE in the environment wins).
import { admittedAtOnce, wantedPoolSize } from '../core/pool-size.cjs'

if (!process.env.UV_THREADPOOL_SIZE) {
  const { videos, features } = admittedAtOnce(process.env)
  process.env.UV_THREADPOOL_SIZE = String(wantedPoolSize(videos, features))
}
void import('./cli.js')
