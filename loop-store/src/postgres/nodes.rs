//! The nodes' rows: a heartbeat, a clean leave, and the list every node reads to know who is
//! alive. Rows, not events: stamped by the database's clock, so nodes' clocks need not agree.

use std::path::Path;

use crate::error::StoreError;
use crate::node::{NodeBeat, NodeSeen};
use crate::postgres::rows::Conn;
use crate::postgres::schema::pg_error;

/// A heartbeat: the node's row, stamped by the database's clock.
const BEAT_SQL: &str = "INSERT INTO nodes (node_id, name, address, capacity, runs, lease_ms, proof)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (node_id) DO UPDATE SET name = $2, address = $3, capacity = $4, runs = $5,
         lease_ms = $6, proof = $7,
         heartbeat_at = now(), left_at = NULL,
         started_at = CASE WHEN nodes.left_at IS NULL THEN nodes.started_at ELSE now() END";
const LEAVE_SQL: &str = "UPDATE nodes SET left_at = now() WHERE node_id = $1";
const NODES_SQL: &str = "SELECT node_id, name, address, capacity, runs, lease_ms,
         (extract(epoch FROM started_at) * 1000)::bigint,
         (extract(epoch FROM heartbeat_at) * 1000)::bigint,
         greatest(0, (extract(epoch FROM now() - heartbeat_at) * 1000))::bigint,
         left_at IS NOT NULL,
         proof
     FROM nodes ORDER BY heartbeat_at DESC";

pub(super) async fn beat(conn: &mut Conn, at: &Path, node: &NodeBeat) -> Result<(), StoreError> {
    let statement = conn.statement(BEAT_SQL, at).await?;
    let capacity = i32::try_from(node.capacity).unwrap_or(i32::MAX);
    let runs = i32::try_from(node.runs).unwrap_or(i32::MAX);
    let lease_ms = i64::try_from(node.lease_ms).unwrap_or(i64::MAX);
    conn.client
        .execute(
            &statement,
            &[
                &node.node_id,
                &node.name,
                &node.address,
                &capacity,
                &runs,
                &lease_ms,
                &node.proof,
            ],
        )
        .await
        .map_err(pg_error(at, "record a heartbeat"))?;
    Ok(())
}

pub(super) async fn leave(conn: &mut Conn, at: &Path, node_id: &str) -> Result<(), StoreError> {
    let statement = conn.statement(LEAVE_SQL, at).await?;
    conn.client
        .execute(&statement, &[&node_id])
        .await
        .map_err(pg_error(at, "record a node leaving"))?;
    Ok(())
}

pub(super) async fn nodes(conn: &mut Conn, at: &Path) -> Result<Vec<NodeSeen>, StoreError> {
    let statement = conn.statement(NODES_SQL, at).await?;
    let rows = conn
        .client
        .query(&statement, &[])
        .await
        .map_err(pg_error(at, "read the nodes"))?;
    Ok(rows
        .iter()
        .map(|row| NodeSeen {
            beat: NodeBeat {
                node_id: row.get(0),
                name: row.get(1),
                address: row.get(2),
                capacity: row.get::<_, i32>(3).max(0) as u32,
                runs: row.get::<_, i32>(4).max(0) as u32,
                lease_ms: row.get::<_, i64>(5).max(0) as u64,
                proof: row.get(10),
            },
            started_ms: row.get(6),
            heartbeat_ms: row.get(7),
            age_ms: row.get::<_, i64>(8).max(0) as u64,
            left: row.get(9),
        })
        .collect())
}
