import { S3Client } from '@aws-sdk/client-s3';
import type { S3Config } from '../config/config.ts';
import { RunError } from '../errors.ts';
import { maskUrlCredentials } from '../util/redact.ts';

/** An S3 client for the configured store: retries with backoff, timeouts, and checksums that suit it. */
export function createS3Client(s3: S3Config): S3Client {
  const checksums = s3.checksums === 'always' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
  return new S3Client({
    region: s3.region,
    ...(s3.endpoint === undefined ? {} : { endpoint: s3.endpoint }),
    forcePathStyle: s3.forcePathStyle,
    ...(s3.credentials === undefined ? {} : { credentials: s3.credentials }),
    // Standard retry mode: exponential backoff with jitter on 5xx, throttling and connection resets.
    maxAttempts: s3.maxAttempts,
    retryMode: 'standard',
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    // socketTimeout ends a request on which no byte moved for S3_TIMEOUT, either way (a stalled upload
    // body, a silent answer), with an error the retry strategy sees. requestTimeout would only log a
    // warning unless told to throw, and would bound the whole request, not the silence.
    requestHandler: { connectionTimeout: Math.min(s3.timeoutMs, 10_000), socketTimeout: s3.timeoutMs },
  });
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** A one-line explanation of an S3 failure, with what to do about it. */
export function s3Problem(error: unknown, what: string, s3: Pick<S3Config, 'bucket' | 'endpoint' | 'timeoutMs'>): RunError {
  if (error instanceof RunError) return error;
  const e = (error ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const where = s3.endpoint === undefined ? 'AWS S3' : maskUrlCredentials(s3.endpoint);
  const name = e.name ?? '';
  const code = e.code ?? '';
  let message: string;
  if (name === 'NoSuchBucket' || (status === 404 && what.startsWith('checking'))) {
    message = `bucket "${s3.bucket}" does not exist at ${where}: create it or fix S3_BUCKET`;
  } else if (name === 'AccessDenied' || name === 'Forbidden' || status === 403) {
    message = `access denied to bucket "${s3.bucket}" at ${where} (${name || status}): check the credentials and that they allow s3:ListBucket, GetObject, PutObject and DeleteObject on it`;
  } else if (name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch') {
    message = `${where} rejected the credentials (${name}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`;
  } else if (name === 'TimeoutError' && /inactivity/.test(e.message ?? '')) {
    message = `${where} went silent: no byte moved for ${s3.timeoutMs / 1000} s (S3_TIMEOUT), on every attempt; check the network and the store`;
  } else if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(code) || name === 'TimeoutError') {
    message = `cannot reach ${where} (${code || name}): check S3_ENDPOINT and the network`;
  } else {
    const detail = (e.message ?? String(error)).split('\n')[0];
    message = `${name || 'error'}${status === undefined ? '' : ` (HTTP ${status})`}: ${detail}`;
  }
  return new RunError(maskUrlCredentials(`S3 ${what} failed: ${message}`));
}
