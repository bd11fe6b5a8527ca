/** PromQL parsed with Prometheus' own grammar (@prometheus-io/lezer-promql). */
import { parser } from '@prometheus-io/lezer-promql';

export interface QueryParts {
  /** Metric names selected (including recorded series). */
  metrics: string[];
  /** Label names used in matchers and in by/without/on/ignoring clauses. */
  labels: string[];
  /** Syntax errors, as character offsets. */
  errors: number[];
  /** Each aggregation's `by` labels; undefined for `without` or no grouping. */
  groupings: (string[] | undefined)[];
}

/** Grafana's interval variables are not PromQL; they stand for a range. */
export const withoutGrafanaVariables = (expr: string) => expr.replace(/\$__(rate_)?interval|\$__range/g, '5m');

export function queryParts(expr: string): QueryParts {
  const tree = parser.parse(expr);
  const parts: QueryParts = { metrics: [], labels: [], errors: [], groupings: [] };
  tree.iterate({
    enter(node) {
      if (node.type.isError) parts.errors.push(node.from);
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') parts.metrics.push(expr.slice(node.from, node.to));
      if (node.name === 'LabelName') parts.labels.push(expr.slice(node.from, node.to));
      if (node.name === 'AggregateExpr') {
        const modifier = node.node.getChild('AggregateModifier');
        parts.groupings.push(
          modifier?.getChild('By') ? modifier.getChild('GroupingLabels')!.getChildren('LabelName').map((l) => expr.slice(l.from, l.to)) : undefined,
        );
      }
    },
  });
  return parts;
}
