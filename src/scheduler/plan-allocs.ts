/**
 * A plan's own copy of the allocations it has booked but not yet committed. The planner
 * books placements here and passes `overlayFor(nodes)` to `place`, so later placements of
 * the same plan see them, while the shared, committed view (the controller's node index)
 * stays untouched until the commit succeeds; a failed commit just drops the plan.
 */
import type { NodeAlloc } from '../model/node.js';
import { addToAlloc, type NodeCandidate, type Placement, type PlacementRequest } from './placement.js';

export class PlanAllocs {
  private readonly booked = new Map<string, NodeAlloc>();
  /** The node list `byPosition` is indexed for. */
  private indexed?: readonly NodeCandidate[];
  private byPosition: (NodeAlloc | undefined)[] = [];

  /** This plan's bookings by position in `nodes`, for `place(nodes, …, { overlay })`. */
  overlayFor(nodes: readonly NodeCandidate[]): readonly (NodeAlloc | undefined)[] | undefined {
    if (this.booked.size === 0) return undefined;
    // The node list changed under the plan (a node joined or left): index it again, O(nodes), rare.
    if (nodes !== this.indexed) this.index(nodes, (c) => this.booked.get(c.name));
    return this.byPosition;
  }

  /** The node's allocation as this plan sees it. */
  allocOf(node: NodeCandidate): NodeAlloc {
    return this.booked.get(node.name) ?? node.alloc;
  }

  /** Books a placed replica on `nodes[index]` (copy-on-write: the node's `alloc` is never changed). */
  book(nodes: readonly NodeCandidate[], index: number, replica: string, req: PlacementRequest, p: Placement): NodeAlloc {
    const node = nodes[index];
    const a = addToAlloc(this.allocOf(node), replica, req, p);
    if (nodes !== this.indexed) this.index(nodes, (c) => this.booked.get(c.name));
    this.booked.set(node.name, a);
    this.byPosition[index] = a;
    return a;
  }

  /** Nodes this plan booked, with their allocations after the plan. */
  entries(): IterableIterator<[string, NodeAlloc]> {
    return this.booked.entries();
  }

  private index(nodes: readonly NodeCandidate[], alloc: (c: NodeCandidate) => NodeAlloc | undefined): void {
    this.indexed = nodes;
    // Packed (not sparse), so a lookup stays an array read.
    this.byPosition = this.booked.size === 0 ? new Array<NodeAlloc | undefined>(nodes.length).fill(undefined) : nodes.map(alloc);
  }
}
