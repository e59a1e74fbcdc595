export default async function globalTeardown(): Promise<void> {
  await Promise.all((globalThis.__BERTH_ENGINES__ ?? []).map((engine) => engine.stop()));
}
