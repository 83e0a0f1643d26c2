// @org/tabr-native's entry. It loads binding.js, the loader `napi build` generates, which picks
// the platform package holding the addon (@org/tabr-native-linux-x64-gnu). When that package
// is missing, napi's own error speaks of a WebAssembly fallback this package does not ship;
// so a failed load is answered here with what to install instead.
//
// The GPU package (@org/tabr-native-linux-x64-gpu: the same addon beside ONNX Runtime's CUDA
// build) is never installed implicitly; when a user has installed it, its addon is the one
// loaded. napi's loader takes an explicit addon path from NAPI_RS_NATIVE_LIBRARY_PATH first,
// so that variable is set for the one require below (unless the user set it) and removed
// again, keeping `module.exports = require('./binding.js')` the single statement that lets
// ES-module imports see the named exports.
'use strict'

const PLATFORM_PACKAGE = '@org/tabr-native-linux-x64-gnu'
const GPU_PACKAGE = '@org/tabr-native-linux-x64-gpu'

/** The GPU package's addon when it is installed (and of this package's version), else null. */
function gpuAddon() {
  let main
  try {
    main = require.resolve(GPU_PACKAGE)
  } catch {
    return null
  }
  const { version } = require('./package.json')
  const gpu = require(`${GPU_PACKAGE}/package.json`).version
  if (gpu !== version) {
    throw new Error(`@org/tabr-native ${version} cannot load ${GPU_PACKAGE} ${gpu}: install the same version of both`)
  }
  return main
}

function explain(err) {
  const { version } = require('./package.json')
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return new Error(`@org/tabr-native runs on x64 Linux with glibc only (this is ${process.platform}-${process.arch})`, { cause: err })
  }
  try {
    // The package's main entry is the addon itself: a folder without it is as good as absent.
    require.resolve(PLATFORM_PACKAGE)
  } catch {
    return new Error(
      `@org/tabr-native: its addon, the package ${PLATFORM_PACKAGE}, is not installed. ` +
        `From the release tarballs, install both in one command: npm install ./org-tabr-native-${version}.tgz ./org-tabr-native-linux-x64-gnu-${version}.tgz ` +
        `(from a registry, npm installs it with @org/tabr-native unless optional dependencies are omitted).`,
      { cause: err },
    )
  }
  return err
}

const gpu = process.env.NAPI_RS_NATIVE_LIBRARY_PATH ? null : gpuAddon()
if (gpu) process.env.NAPI_RS_NATIVE_LIBRARY_PATH = gpu
// One statement, `module.exports = require(...)`, so that Node's ES-module import sees the
// binding's named exports through it.
try {
  module.exports = require('./binding.js')
} catch (err) {
  throw explain(err)
} finally {
  if (gpu) delete process.env.NAPI_RS_NATIVE_LIBRARY_PATH
}
