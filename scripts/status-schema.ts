// Writes examples/monitoring/status.schema.json: the JSON Schema of the status page's ?format=json, from the zod schema the code checks against.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { statusReport } from '../src/health/report.ts';

writeFileSync(join(import.meta.dirname, '../examples/monitoring/status.schema.json'), `${JSON.stringify(z.toJSONSchema(statusReport), null, 2)}\n`);
