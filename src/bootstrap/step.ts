/**
 * Steps, plans and their runner. A step first checks (reads only) and returns the
 * changes it would make; apply makes exactly those and reports what it did. Every
 * step of a plan is checked before the first one applies, so bad input or a broken
 * file stops the run with nothing changed.
 */
import { KiverError } from '../errors.js';

/** A bootstrap step failed: what failed, and what earlier steps had already done. */
export class BootstrapError extends KiverError {
  override readonly status: number = 500;
  override readonly code: string = 'bootstrap_failed';
}

export interface Step {
  /** Short name shown in the plan, e.g. "packages", "docker daemon config". */
  name: string;
  /** Changes this step would make now; empty when there is nothing to do. Must not change anything. */
  check(): Promise<string[]>;
  /** Makes the changes check() listed; returns what it did. */
  apply(): Promise<string[]>;
}

export interface PlannedStep {
  step: Step;
  changes: string[];
}

export interface RunReport {
  planned: PlannedStep[];
  /** Lines of what apply did, per step, in order. */
  done: { step: string; did: string[] }[];
  applied: boolean;
}

export type Printer = (line: string) => void;

/** Checks every step, in order (a later check may depend on an earlier one's finding). */
export async function planSteps(steps: Step[]): Promise<PlannedStep[]> {
  const out: PlannedStep[] = [];
  for (const step of steps) {
    let changes: string[];
    try {
      changes = await step.check();
    } catch (err) {
      if (err instanceof KiverError) throw err;
      throw new BootstrapError(`${step.name}: ${(err as Error).message} (nothing was changed)`);
    }
    out.push({ step, changes });
  }
  return out;
}

export function printPlan(planned: PlannedStep[], print: Printer): void {
  for (const { step, changes } of planned) {
    if (changes.length === 0) print(`  = ${step.name}: nothing to do`);
    for (const c of changes) print(`  + ${step.name}: ${c}`);
  }
}

/**
 * Applies the steps that have changes, in order. A failing step stops the run with
 * its reason and the list of what was done before it (steps are idempotent: running
 * again continues where it stopped).
 */
export async function applyPlan(planned: PlannedStep[], print: Printer): Promise<RunReport['done']> {
  const done: RunReport['done'] = [];
  for (const { step, changes } of planned) {
    if (changes.length === 0) continue;
    let did: string[];
    try {
      did = await step.apply();
    } catch (err) {
      const already = done.flatMap((d) => d.did.map((l) => `    ${d.step}: ${l}`));
      throw new BootstrapError(
        `step "${step.name}" failed: ${(err as Error).message}\n` +
          (already.length ? `  already done:\n${already.join('\n')}` : '  nothing was changed before it') +
          `\n  run the same command again to continue (every step is idempotent)`,
      );
    }
    for (const l of did) print(`  done ${step.name}: ${l}`);
    done.push({ step: step.name, did });
  }
  return done;
}
