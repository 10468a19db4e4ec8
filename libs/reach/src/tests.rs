use std::net::IpAddr;

use serde_json::json;

use super::*;

/// An `AWS::EC2::SecurityGroup` configuration as AWS Config records it
/// (both `ipv4Ranges` objects and the older `ipRanges` strings).
fn cde_group() -> Value {
    json!({
        "description": "payments database",
        "groupName": "cde-db",
        "groupId": "sg-0cde",
        "vpcId": "vpc-1",
        "ownerId": "123456789012",
        "ipPermissions": [
            {"fromPort": 5432, "toPort": 5432, "ipProtocol": "tcp", "ipv6Ranges": [], "prefixListIds": [],
             "userIdGroupPairs": [{"groupId": "sg-0app", "userId": "123456789012"}], "ipv4Ranges": [], "ipRanges": []},
            {"fromPort": 22, "toPort": 22, "ipProtocol": "tcp", "ipv6Ranges": [], "prefixListIds": [],
             "userIdGroupPairs": [], "ipv4Ranges": [{"cidrIp": "10.9.0.0/16"}], "ipRanges": ["10.9.0.0/16"]},
            {"fromPort": 443, "toPort": 443, "ipProtocol": "tcp", "prefixListIds": [{"prefixListId": "pl-0corp"}]},
            {"ipProtocol": "icmp", "fromPort": -1, "toPort": -1, "ipv4Ranges": [{"cidrIp": "10.0.0.0/8"}]}
        ],
        "ipPermissionsEgress": [
            {"ipProtocol": "-1", "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": [],
             "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"]}
        ],
        "tags": []
    })
}

fn rules() -> Rules {
    let mut r = Rules::default();
    let g = aws_security_group("sg-0cde", &cde_group()).expect("reads");
    r.groups.insert(g.id.clone(), g);
    let app = json!({"groupId": "sg-0app", "ipPermissions": [], "ipPermissionsEgress": [
        {"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432, "ipv4Ranges": [{"cidrIp": "10.0.0.0/16"}]}]});
    let g = aws_security_group("sg-0app", &app).expect("reads");
    r.groups.insert(g.id.clone(), g);
    let pl = json!({"PrefixListId": "pl-0corp", "PrefixListName": "corp", "Entries": [{"Cidr": "10.50.0.0/16", "Description": "corp"}]});
    r.prefix_lists.insert("pl-0corp".into(), aws_prefix_list(&pl).expect("reads"));
    r
}

fn ips(s: &[&str]) -> Vec<IpAddr> {
    s.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn an_aws_config_security_group_reads_into_rules() {
    let g = aws_security_group("sg-0cde", &cde_group()).expect("reads");
    assert_eq!((g.name.as_deref(), g.vpc_id.as_deref()), (Some("cde-db"), Some("vpc-1")));
    assert_eq!(g.ingress.len(), 4);
    assert_eq!(g.ingress[0].peers, vec![Peer::Group("sg-0app".into())]);
    assert_eq!(g.ingress[1].peers, vec![Peer::Cidr("10.9.0.0/16".parse().unwrap())], "one CIDR written twice");
    assert_eq!(g.ingress[2].peers, vec![Peer::PrefixList("pl-0corp".into())]);
    assert_eq!(g.ingress[0].service(), "TCP/5432");
    assert_eq!(g.ingress[3].service(), "ICMP/all ports");
    assert_eq!(g.egress[0].service(), "all traffic");
    assert!(g.egress[0].covers(17, 53));
    let bad = json!({"ipPermissions": [{"ipProtocol": "tcp", "fromPort": 10, "toPort": 5, "ipv4Ranges": []}]});
    let e = aws_security_group("sg-x", &bad).unwrap_err();
    assert_eq!(e.to_string(), "ipPermissions[0].fromPort: 10-5 is not a port range");
    let bad = json!({"ipPermissions": [{"ipProtocol": "tcp", "fromPort": 1, "toPort": 5, "ipv4Ranges": [{"cidrIp": "10.0.0/8"}]}]});
    assert!(aws_security_group("sg-x", &bad).unwrap_err().to_string().contains("'10.0.0/8' is not a CIDR block"));
}

#[test]
fn group_references_cidrs_and_prefix_lists_admit_with_stateful_semantics() {
    let r = rules();
    let (db_ip, db_groups) = (ips(&["10.0.2.10"]), vec!["sg-0cde".to_owned()]);
    let db = End { addresses: &db_ip, groups: &db_groups };
    // A member of sg-0app: TCP/5432 (its own egress allows 5432 to 10.0/16).
    let (app_ip, app_groups) = (ips(&["10.0.1.5"]), vec!["sg-0app".to_owned()]);
    let app = End { addresses: &app_ip, groups: &app_groups };
    let a: Vec<String> = allowed(app, db, &r).iter().map(Allowed::describe).collect();
    assert_eq!(a, vec!["sg-0cde admits TCP/5432 from sg-0app"], "ICMP from 10/8 is not let out by sg-0app's egress");
    assert_eq!(admits(app, db, 6, 5432, &r), Some(true));
    assert_eq!(admits(app, db, 6, 22, &r), Some(false));
    // A host in 10.9/16 with no known group: SSH, and ICMP (10/8).
    let (jump_ip, none) = (ips(&["10.9.3.3"]), Vec::<String>::new());
    let jump = End { addresses: &jump_ip, groups: &none };
    let d: Vec<String> = allowed(jump, db, &r).iter().map(Allowed::describe).collect();
    assert_eq!(d, vec!["sg-0cde admits TCP/22 from 10.9.0.0/16", "sg-0cde admits ICMP/all ports from 10.0.0.0/8"]);
    // The prefix list.
    let corp_ip = ips(&["10.50.7.7"]);
    let corp = End { addresses: &corp_ip, groups: &none };
    assert!(allowed(corp, db, &r).iter().any(|a| a.describe() == "sg-0cde admits TCP/443 from prefix list pl-0corp"));
    // Outside every rule.
    let far_ip = ips(&["192.168.1.1"]);
    assert!(allowed(End { addresses: &far_ip, groups: &none }, db, &r).is_empty());
    // A destination with a group not in the inventory: nothing can be said.
    let unknown = vec!["sg-0cde".to_owned(), "sg-missing".to_owned()];
    assert_eq!(admits(app, End { addresses: &db_ip, groups: &unknown }, 6, 5432, &r), None);
}
