// What the Node benchmark scripts share.
import { createServer } from 'node:net'

/** A free loopback port (the kernel picks it; the listener is closed before it is used). */
export const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
