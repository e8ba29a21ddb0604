import { defineConfig } from 'vitest/config';

// `npm run test:image`: builds the image with podman and runs it (needs root; see README, Development).
export default defineConfig({
  test: {
    include: ['test/image/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 900_000,
    pool: 'forks',
    reporters: ['default', 'json'],
    outputFile: { json: '.tmp/vitest-image-report.json' },
  },
});
