/** A small client of the discovery API, for the CLI. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;

  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export interface ApiClient {
  request<T>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }>;
}

export function apiClient(baseUrl: string, token: string | undefined): ApiClient {
  return {
    async request<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown) {
      let response: Response;
      try {
        response = await fetch(new URL(path, baseUrl), {
          method,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
      } catch (error) {
        throw new ApiError(
          0,
          'unavailable',
          `cannot reach berth at ${baseUrl}: ${(error as Error).message}`,
        );
      }
      const text = await response.text();
      let parsed: unknown;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        parsed = text;
      }
      if (!response.ok) {
        const error = (
          parsed as { error?: { code?: string; message?: string; field?: string } } | undefined
        )?.error;
        throw new ApiError(
          response.status,
          error?.code ?? 'unknown',
          error?.message ?? `HTTP ${response.status}`,
          error?.field,
        );
      }
      return { status: response.status, body: parsed as T };
    },
  };
}
