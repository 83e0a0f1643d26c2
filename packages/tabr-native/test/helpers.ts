// Shared test helpers.

/** The `code` a promise rejects with ('resolved' when it does not reject). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (e) {
    return (e as { code?: string }).code ?? `no code: ${String(e)}`
  }
  return 'resolved'
}
