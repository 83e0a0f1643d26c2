// @org/tabr-native's entry. It loads binding.js, the loader `napi build` generates, which picks
// the platform package holding the addon (@org/tabr-native-linux-x64-gnu). When that package
// is missing, napi's own error speaks of a WebAssembly fallback this package does not ship;
// so a failed load is answered here with what to install instead.
'use strict'

const PLATFORM_PACKAGE = '@org/tabr-native-linux-x64-gnu'

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

// One statement, `module.exports = require(...)`, so that Node's ES-module import sees the
// binding's named exports through it.
try {
  module.exports = require('./binding.js')
} catch (err) {
  throw explain(err)
}
