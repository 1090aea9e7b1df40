#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! The classic consumer group protocol on the wire: member ids (KIP-394), rebalances, error
//! codes for stale or unknown members, commits and their survival across restarts.

mod common;

use std::thread;

use bytes::Bytes;
use common::requests::create_topic;
use common::{name, str, Broker, Client};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;

const FAST: &[&str] = &["--group-initial-rebalance-delay-ms", "0"];

fn join(client: &mut Client, group: &str, member: &str, version: i16) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(str(member))
        .with_protocol_type(str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(str("range")).with_metadata(Bytes::from_static(b"sub")),
        ]);
    expect_kind!(client.call(ApiKey::JoinGroup, version, &request), JoinGroup)
}

/// Joins with KIP-394's two steps and returns the final join response.
fn join_new(client: &mut Client, group: &str) -> JoinGroupResponse {
    let first = join(client, group, "", 9);
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    assert!(!first.member_id.is_empty());
    join(client, group, first.member_id.as_str(), 9)
}

fn sync(client: &mut Client, group: &str, generation: i32, member: &str, assignments: Vec<(&str, &'static [u8])>) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_generation_id(generation)
        .with_member_id(str(member))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| SyncGroupRequestAssignment::default().with_member_id(str(m)).with_assignment(Bytes::from_static(a)))
                .collect(),
        );
    expect_kind!(client.call(ApiKey::SyncGroup, 5, &request), SyncGroup)
}

fn heartbeat(client: &mut Client, group: &str, generation: i32, member: &str) -> i16 {
    let request = HeartbeatRequest::default().with_group_id(GroupId(str(group))).with_generation_id(generation).with_member_id(str(member));
    expect_kind!(client.call(ApiKey::Heartbeat, 4, &request), Heartbeat).error_code
}

fn commit(client: &mut Client, group: &str, generation: i32, member: &str, topic: &str, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str(member))
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(name(topic)).with_partitions(vec![
            OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(str("note"))),
        ])]);
    let r = expect_kind!(client.call(ApiKey::OffsetCommit, 9, &request), OffsetCommit);
    r.topics[0].partitions[0].error_code
}

fn fetch_offset(client: &mut Client, group: &str, topic: &str, version: i16) -> (i64, String) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default().with_name(name(topic)).with_partition_indexes(vec![0])]));
    let r = expect_kind!(client.call(ApiKey::OffsetFetch, version, &request), OffsetFetch);
    let p = &r.topics[0].partitions[0];
    (p.committed_offset, p.metadata.as_ref().map(|m| m.to_string()).unwrap_or_default())
}

#[test]
fn one_member_joins_syncs_heartbeats_and_commits() {
    let (_dir, broker) = common::temp_broker(FAST);
    let mut c = broker.client();
    create_topic(&mut c, "orders", 1, &[]);
    let joined = join_new(&mut c, "g1");
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    let me = joined.member_id.to_string();
    let synced = sync(&mut c, "g1", 1, &me, vec![(&me, b"mine")]);
    assert_eq!((synced.error_code, synced.assignment.as_ref()), (0, &b"mine"[..]));
    assert_eq!(heartbeat(&mut c, "g1", 1, &me), 0);
    assert_eq!(commit(&mut c, "g1", 1, &me, "orders", 42), 0);
    for version in 1..=7 {
        assert_eq!(fetch_offset(&mut c, "g1", "orders", version), (42, "note".into()), "OffsetFetch v{version}");
    }
}

#[test]
fn stale_and_unknown_members_get_the_right_errors() {
    let (_dir, broker) = common::temp_broker(FAST);
    let mut c = broker.client();
    create_topic(&mut c, "t", 1, &[]);
    assert_eq!(heartbeat(&mut c, "nobody", 1, "ghost"), 25, "UNKNOWN_MEMBER_ID for an unknown group");
    assert_eq!(commit(&mut c, "nobody", 3, "ghost", "t", 1), 22, "ILLEGAL_GENERATION: a generation for a group that does not exist");
    assert_eq!(commit(&mut c, "standalone", -1, "", "t", 7), 0, "a standalone consumer may commit");
    // OffsetFetch v8 asks for several groups at once.
    let multi = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(str("standalone"))).with_topics(None),
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(str("nobody"))).with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopics::default().with_name(name("t")).with_partition_indexes(vec![0]),
        ])),
    ]);
    let r = expect_kind!(c.call(ApiKey::OffsetFetch, 9, &multi), OffsetFetch);
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 7);
    assert_eq!(r.groups[1].topics[0].partitions[0].committed_offset, -1, "no commit: -1");

    let joined = join_new(&mut c, "g2");
    let me = joined.member_id.to_string();
    assert_eq!(sync(&mut c, "g2", 1, &me, vec![]).error_code, 0);
    assert_eq!(heartbeat(&mut c, "g2", 0, &me), 22, "ILLEGAL_GENERATION");
    assert_eq!(heartbeat(&mut c, "g2", 1, "ghost"), 25, "UNKNOWN_MEMBER_ID");
    assert_eq!(commit(&mut c, "g2", 7, &me, "t", 1), 22);
    assert_eq!(commit(&mut c, "g2", 1, "ghost", "t", 1), 25);
    assert_eq!(commit(&mut c, "g2", -1, "", "t", 1), 25, "a standalone commit to a group with members");
    assert_eq!(join(&mut c, "g2", "made-up", 9).error_code, 25, "joining with an id never handed out");
    assert_eq!(commit(&mut c, "g2", 1, &me, "no-such-topic", 1), 3);
}

#[test]
fn a_second_member_triggers_a_rebalance_and_both_get_assignments() {
    let (_dir, broker) = common::temp_broker(FAST);
    let mut first = broker.client();
    let joined = join_new(&mut first, "g3");
    let one = joined.member_id.to_string();
    assert_eq!(sync(&mut first, "g3", 1, &one, vec![(&one, b"all")]).error_code, 0);

    // The second member's join waits for the first to rejoin.
    let addr = broker.addr;
    let second = thread::spawn(move || {
        let mut c = Client::connect(addr);
        let joined = join_new(&mut c, "g3");
        (c, joined)
    });
    let mut rebalancing = 0;
    for _ in 0..200 {
        match heartbeat(&mut first, "g3", 1, &one) {
            27 => {
                rebalancing += 1;
                break;
            }
            0 => thread::sleep(std::time::Duration::from_millis(20)),
            other => panic!("unexpected heartbeat error {other}"),
        }
    }
    assert_eq!(rebalancing, 1, "the first member hears REBALANCE_IN_PROGRESS");
    assert_eq!(commit(&mut first, "g3", 1, &one, "t", 0), 3, "commits are still accepted while preparing (unknown topic here)");
    let rejoined = join(&mut first, "g3", &one, 9);
    let (mut c2, joined2) = second.join().expect("second member");
    assert_eq!((rejoined.generation_id, joined2.generation_id), (2, 2));
    assert_eq!(rejoined.leader.as_str(), one, "the leader stays");
    assert_eq!(rejoined.members.len(), 2, "the leader sees both members");
    assert!(joined2.members.is_empty(), "followers see no members");
    let two = joined2.member_id.to_string();
    let follower = thread::spawn(move || sync(&mut c2, "g3", 2, &two, vec![]));
    let leader = sync(&mut first, "g3", 2, &one, vec![(&one, b"p0"), (&joined2.member_id.to_string(), b"p1")]);
    assert_eq!(leader.assignment.as_ref(), b"p0");
    assert_eq!(follower.join().expect("follower").assignment.as_ref(), b"p1");

    let describe = DescribeGroupsRequest::default().with_groups(vec![GroupId(str("g3"))]);
    let described = expect_kind!(first.call(ApiKey::DescribeGroups, 5, &describe), DescribeGroups);
    assert_eq!(described.groups[0].group_state.as_str(), "Stable");
    assert_eq!(described.groups[0].members.len(), 2);
    let listed = expect_kind!(first.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default().with_states_filter(vec![str("stable")])), ListGroups);
    assert!(listed.groups.iter().any(|g| g.group_id.0.as_str() == "g3"));

    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str("g3")), GroupId(str("missing"))]);
    let deleted = expect_kind!(first.call(ApiKey::DeleteGroups, 2, &delete), DeleteGroups);
    assert_eq!(deleted.results[0].error_code, 68, "NON_EMPTY_GROUP");
    assert_eq!(deleted.results[1].error_code, 69, "GROUP_ID_NOT_FOUND");
}

#[test]
fn commits_and_groups_survive_a_restart() {
    {
        let engine = "embedded";
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let flags = ["--storage", engine, "--group-initial-rebalance-delay-ms", "0"];
        let me;
        {
            let broker = Broker::start(&data, &flags);
            let mut c = broker.client();
            create_topic(&mut c, "kept", 1, &[]);
            let joined = join_new(&mut c, "durable");
            me = joined.member_id.to_string();
            assert_eq!(sync(&mut c, "durable", 1, &me, vec![(&me, b"a")]).error_code, 0);
            assert_eq!(commit(&mut c, "durable", 1, &me, "kept", 17), 0);
            assert_eq!(broker.terminate().code(), Some(0));
        }
        let broker = Broker::start(&data, &flags);
        let mut c = broker.client();
        let listed = expect_kind!(c.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default()), ListGroups);
        let durable = listed.groups.iter().find(|g| g.group_id.0.as_str() == "durable").expect("the saved group is listed");
        assert_eq!(durable.group_state.as_str(), "Stable", "{engine}: listed before any member comes back");
        assert_eq!(fetch_offset(&mut c, "durable", "kept", 7), (17, "note".into()), "{engine}: the commit and its metadata");
        assert_eq!(heartbeat(&mut c, "durable", 1, &me), 0, "{engine}: the member carries on in its generation");
        let synced = sync(&mut c, "durable", 1, &me, vec![]);
        assert_eq!(synced.assignment.as_ref(), b"a", "{engine}: and keeps its assignment");
    }
}

#[test]
fn every_advertised_group_api_version_answers() {
    let (_dir, broker) = common::temp_broker(FAST);
    let mut c = broker.client();
    create_topic(&mut c, "v", 1, &[]);
    for version in 0..=4 {
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![str("gv")])
        } else {
            FindCoordinatorRequest::default().with_key(str("gv"))
        };
        let r = expect_kind!(c.call(ApiKey::FindCoordinator, version, &request), FindCoordinator);
        let port = if version >= 4 { r.coordinators[0].port } else { r.port };
        assert_eq!(port as u16, broker.addr.port(), "FindCoordinator v{version}");
    }
    for version in 0..=9 {
        let group = format!("gv{version}");
        let mut joined = join(&mut c, &group, "", version);
        if version >= 4 {
            assert_eq!(joined.error_code, 79, "JoinGroup v{version}");
            joined = join(&mut c, &group, joined.member_id.as_str(), version);
        }
        assert_eq!((joined.error_code, joined.generation_id), (0, 1), "JoinGroup v{version}");
        let me = joined.member_id.to_string();
        let sync_version = version.min(5);
        let request = SyncGroupRequest::default().with_group_id(GroupId(str(&group))).with_generation_id(1).with_member_id(str(&me));
        assert_eq!(expect_kind!(c.call(ApiKey::SyncGroup, sync_version, &request), SyncGroup).error_code, 0, "SyncGroup v{sync_version}");
        let hb_version = version.min(4);
        let request = HeartbeatRequest::default().with_group_id(GroupId(str(&group))).with_generation_id(1).with_member_id(str(&me));
        assert_eq!(expect_kind!(c.call(ApiKey::Heartbeat, hb_version, &request), Heartbeat).error_code, 0, "Heartbeat v{hb_version}");
        if (2..=9).contains(&version) {
            let request = OffsetCommitRequest::default()
                .with_group_id(GroupId(str(&group)))
                .with_generation_id_or_member_epoch(1)
                .with_member_id(str(&me))
                .with_topics(vec![OffsetCommitRequestTopic::default().with_name(name("v")).with_partitions(vec![
                    OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(version as i64),
                ])]);
            let r = expect_kind!(c.call(ApiKey::OffsetCommit, version, &request), OffsetCommit);
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "OffsetCommit v{version}");
            if version <= 7 {
                assert_eq!(fetch_offset(&mut c, &group, "v", version.max(1)).0, version as i64, "OffsetFetch v{version}");
            }
        }
        let leave_version = version.min(5);
        let request = if leave_version >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(str(&group)))
                .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(str(&me))])
        } else {
            LeaveGroupRequest::default().with_group_id(GroupId(str(&group))).with_member_id(str(&me))
        };
        let r = expect_kind!(c.call(ApiKey::LeaveGroup, leave_version, &request), LeaveGroup);
        assert_eq!(r.error_code, 0, "LeaveGroup v{leave_version}");
    }
    for version in 0..=5 {
        let r = expect_kind!(c.call(ApiKey::DescribeGroups, version, &DescribeGroupsRequest::default().with_groups(vec![GroupId(str("gv9"))])), DescribeGroups);
        assert_eq!(r.groups[0].group_state.as_str(), "Empty", "DescribeGroups v{version}");
        let r = expect_kind!(c.call(ApiKey::ListGroups, version, &ListGroupsRequest::default()), ListGroups);
        assert!(r.groups.iter().any(|g| g.group_id.0.as_str() == "gv9"), "ListGroups v{version}");
    }
    let request = OffsetDeleteRequest::default().with_group_id(GroupId(str("gv9"))).with_topics(vec![
        offset_delete_request::OffsetDeleteRequestTopic::default()
            .with_name(name("v"))
            .with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0)]),
    ]);
    let r = expect_kind!(c.call(ApiKey::OffsetDelete, 0, &request), OffsetDelete);
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert_eq!(fetch_offset(&mut c, "gv9", "v", 7).0, -1, "the commit is gone");
    for version in 0..=2 {
        let group = format!("gv{}", version + 2);
        let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str(&group))]);
        let r = expect_kind!(c.call(ApiKey::DeleteGroups, version, &request), DeleteGroups);
        assert_eq!(r.results[0].error_code, 0, "DeleteGroups v{version}");
        assert_eq!(fetch_offset(&mut c, &group, "v", 7).0, -1, "deleting a group deletes its commits");
    }
}

fn consumer_heartbeat(client: &mut Client, version: i16, group: &str, member: &str, epoch: i32, topics: Option<&[&str]>) -> ConsumerGroupHeartbeatResponse {
    let mut request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_member_id(str(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(topics.map(|t| t.iter().map(|n| name(n)).collect()))
        .with_server_assignor(Some(str("range")));
    if epoch > 0 {
        request = request.with_topic_partitions(None).with_server_assignor(None);
    }
    expect_kind!(client.call(ApiKey::ConsumerGroupHeartbeat, version, &request), ConsumerGroupHeartbeat)
}

#[test]
fn kip_848_members_join_get_assignments_and_leave() {
    let (_dir, broker) = common::temp_broker(FAST);
    let mut c = broker.client();
    create_topic(&mut c, "k", 4, &[]);
    for version in 0..=1 {
        let group = format!("k848-v{version}");
        // v1 clients choose their member id; v0 clients let the broker choose.
        let asked = if version >= 1 { "member-a" } else { "" };
        let joined = consumer_heartbeat(&mut c, version, &group, asked, 0, Some(&["k"]));
        assert_eq!(joined.error_code, 0, "v{version}: {:?}", joined.error_message);
        let member = joined.member_id.as_ref().map(|m| m.to_string()).expect("a member id");
        if version >= 1 {
            assert_eq!(member, "member-a");
        }
        assert_eq!(joined.member_epoch, 1);
        let assignment = joined.assignment.expect("the first heartbeat carries the assignment");
        assert_eq!(assignment.topic_partitions[0].partitions, vec![0, 1, 2, 3]);

        let describe = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(str(&group))]);
        let d = expect_kind!(c.call(ApiKey::ConsumerGroupDescribe, version, &describe), ConsumerGroupDescribe);
        assert_eq!(d.groups[0].error_code, 0);
        assert_eq!(d.groups[0].assignor_name.as_str(), "range");
        assert_eq!(d.groups[0].members[0].member_epoch, 1);
        assert_eq!(d.groups[0].members[0].target_assignment.topic_partitions[0].topic_name.0.as_str(), "k");

        let stale = consumer_heartbeat(&mut c, version, &group, &member, 5, None);
        assert_eq!(stale.error_code, 110, "FENCED_MEMBER_EPOCH");
        let left = consumer_heartbeat(&mut c, version, &group, &member, -1, None);
        assert_eq!((left.error_code, left.member_epoch), (0, -1));
        let d = expect_kind!(c.call(ApiKey::ConsumerGroupDescribe, version, &describe), ConsumerGroupDescribe);
        assert_eq!(d.groups[0].group_state.as_str(), "Empty");
    }
    let bad = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str("bad")))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![name("k")]))
        .with_server_assignor(Some(str("sticky")));
    let r = expect_kind!(c.call(ApiKey::ConsumerGroupHeartbeat, 1, &bad), ConsumerGroupHeartbeat);
    assert_eq!(r.error_code, 112, "UNSUPPORTED_ASSIGNOR");
    let unknown = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(str("nope"))]);
    let d = expect_kind!(c.call(ApiKey::ConsumerGroupDescribe, 1, &unknown), ConsumerGroupDescribe);
    assert_eq!(d.groups[0].error_code, 69, "GROUP_ID_NOT_FOUND");
}
