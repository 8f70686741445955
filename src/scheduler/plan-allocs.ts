/**
 * A plan's own copy of the allocations it has booked but not yet committed. The planner
 * books placements here and passes `overlay` to `place`, so later placements of the same
 * plan see them, while the shared, committed view (the controller's node index) stays
 * untouched until the commit succeeds; a failed commit just drops the plan.
 */
import type { NodeAlloc } from '../model/node.js';
import { addToAlloc, type NodeCandidate, type Placement, type PlacementRequest } from './placement.js';

export class PlanAllocs {
  private readonly booked = new Map<string, NodeAlloc>();

  /** Booked allocations by node name, for `place(…, { overlay })`. */
  get overlay(): ReadonlyMap<string, NodeAlloc> {
    return this.booked;
  }

  /** The node's allocation as this plan sees it. */
  allocOf(node: NodeCandidate): NodeAlloc {
    return this.booked.get(node.name) ?? node.alloc;
  }

  /** Books a placed replica on its node (copy-on-write: `node.alloc` is never changed). */
  book(node: NodeCandidate, replica: string, req: PlacementRequest, p: Placement): NodeAlloc {
    const a = addToAlloc(this.allocOf(node), replica, req, p);
    this.booked.set(node.name, a);
    return a;
  }

  /** Nodes this plan booked, with their allocations after the plan. */
  entries(): IterableIterator<[string, NodeAlloc]> {
    return this.booked.entries();
  }
}
