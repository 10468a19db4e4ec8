use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::gcp::gcp_firewall;

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

const PROD: &str = "projects/shop/global/networks/prod";

/// A firewall resource as the Compute API and Cloud Asset Inventory
/// (`resource.data`) give it.
fn firewall(name: &str, extra: Value) -> Value {
    let mut v = json!({
        "kind": "compute#firewall",
        "id": "7263018844017612345",
        "creationTimestamp": "2026-11-02T08:10:31.114-07:00",
        "name": name,
        "description": "",
        "network": "https://www.googleapis.com/compute/v1/projects/shop/global/networks/prod",
        "priority": 1000,
        "direction": "INGRESS",
        "logConfig": {"enable": false},
        "disabled": false,
        "selfLink": format!("https://www.googleapis.com/compute/v1/projects/shop/global/firewalls/{name}")
    });
    for (k, x) in extra.as_object().expect("an object") {
        v[k] = x.clone();
    }
    v
}

fn gcp_rules(docs: &[Value]) -> Rules {
    let mut r = Rules::default();
    for d in docs {
        let rule = gcp_firewall(d).expect("reads");
        let id = format!("//compute.googleapis.com/projects/shop/global/firewalls/{}", rule.name);
        r.upsert_firewall_rule(&id, rule);
    }
    r
}

fn selectors(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| (*s).to_owned()).collect()
}

fn allow_db() -> Value {
    firewall(
        "allow-db",
        json!({"sourceTags": ["app"], "targetTags": ["cde-db"],
               "allowed": [{"IPProtocol": "tcp", "ports": ["5432", "8000-8080"]}]}),
    )
}

#[test]
fn a_gcp_firewall_rule_reads_with_its_defaults() {
    let r = gcp_firewall(&allow_db()).expect("reads");
    assert_eq!((r.name.as_str(), r.set.as_str(), r.priority), ("allow-db", PROD, 1000));
    assert_eq!((r.direction, r.deny, r.disabled), (Direction::Ingress, false, false));
    assert_eq!(r.targets, vec![Peer::Group("tag:cde-db".into())]);
    let services: Vec<String> = r.services.iter().map(Rule::service).collect();
    assert_eq!(services, vec!["TCP/5432", "TCP/8000-8080"]);
    assert_eq!(r.services[0].peers, vec![Peer::Group("tag:app".into())]);
    // No sources: every source; no ports: every port; icmp: no ports.
    let open = gcp_firewall(&json!({"name": "open", "network": "projects/shop/global/networks/prod",
        "allowed": [{"IPProtocol": "icmp"}, {"IPProtocol": "all"}]}))
    .expect("reads");
    assert_eq!(open.priority, 1000, "the API's default priority");
    assert_eq!(open.services[0].service(), "ICMP/all ports");
    assert_eq!(open.services[1].service(), "all traffic");
    assert_eq!(open.services[0].peers.len(), 2, "0.0.0.0/0 and ::/0");
    // Refused with the field named.
    let e = gcp_firewall(&firewall("x", json!({"allowed": [{"IPProtocol": "tcp", "ports": ["90-80"]}]}))).unwrap_err();
    assert_eq!(e.to_string(), "allowed[0].ports: '90-80' is not a port or range");
    let e = gcp_firewall(&firewall("x", json!({}))).unwrap_err();
    assert_eq!(e.to_string(), "allowed: a rule needs 'allowed' or 'denied'");
    let e = gcp_firewall(&firewall("x", json!({"network": "prod", "allowed": [{"IPProtocol": "tcp"}]}))).unwrap_err();
    assert!(e.to_string().starts_with("network: 'prod' is not a network"), "{e}");
    let e = gcp_firewall(&firewall("x", json!({"priority": 70000, "allowed": [{"IPProtocol": "tcp"}]}))).unwrap_err();
    assert!(e.to_string().starts_with("priority:"), "{e}");
}

#[test]
fn gcp_network_tags_select_targets_and_sources_within_their_network() {
    let r = gcp_rules(&[allow_db()]);
    let (db_ip, db_sel) = (ips(&["10.128.0.10"]), selectors(&[PROD, "tag:cde-db"]));
    let db = End { addresses: &db_ip, groups: &db_sel };
    let (app_ip, app_sel) =
        (ips(&["10.128.0.20"]), selectors(&[PROD, "tag:app", "serviceAccount:app@shop.iam.gserviceaccount.com"]));
    let app = End { addresses: &app_ip, groups: &app_sel };
    let a: Vec<String> = allowed(app, db, &r).iter().map(Allowed::describe).collect();
    assert_eq!(
        a,
        vec![
            "firewall rule allow-db (priority 1000) admits TCP/5432 from tag:app",
            "firewall rule allow-db (priority 1000) admits TCP/8000-8080 from tag:app"
        ]
    );
    assert_eq!(admits(app, db, 6, 5432, &r), Some(true));
    assert_eq!(admits(app, db, 6, 22, &r), Some(false), "the implied rule denies ingress");
    // The same tag in another network is another instance's business.
    let dev = selectors(&["projects/shop/global/networks/dev", "tag:app"]);
    assert!(allowed(End { addresses: &app_ip, groups: &dev }, db, &r).is_empty());
    // Not a target: the rule does not apply to it.
    let (web_ip, web_sel) = (ips(&["10.128.0.30"]), selectors(&[PROD, "tag:web"]));
    assert!(allowed(app, End { addresses: &web_ip, groups: &web_sel }, &r).is_empty());
    assert_eq!(admits(app, End { addresses: &web_ip, groups: &web_sel }, 6, 5432, &r), Some(false));
    // A network whose rules are not in the inventory: nothing can be said.
    let other = selectors(&["projects/shop/global/networks/other", "tag:cde-db"]);
    assert_eq!(admits(app, End { addresses: &db_ip, groups: &other }, 6, 5432, &r), None);
    // Service accounts as sources and targets.
    let by_sa = firewall(
        "allow-sa",
        json!({"sourceServiceAccounts": ["app@shop.iam.gserviceaccount.com"],
               "targetServiceAccounts": ["db@shop.iam.gserviceaccount.com"],
               "allowed": [{"IPProtocol": "tcp", "ports": ["6379"]}]}),
    );
    let r = gcp_rules(&[by_sa]);
    let cache_sel = selectors(&[PROD, "serviceAccount:db@shop.iam.gserviceaccount.com"]);
    let cache = End { addresses: &db_ip, groups: &cache_sel };
    let a: Vec<String> = allowed(app, cache, &r).iter().map(Allowed::describe).collect();
    assert_eq!(
        a,
        vec![
            "firewall rule allow-sa (priority 1000) admits TCP/6379 from serviceAccount:app@shop.iam.gserviceaccount.com"
        ]
    );
}

#[test]
fn gcp_priorities_decide_and_a_deny_wins_a_tie() {
    let (db_ip, db_sel) = (ips(&["10.128.0.10"]), selectors(&[PROD, "tag:cde-db"]));
    let db = End { addresses: &db_ip, groups: &db_sel };
    let (app_ip, app_sel) = (ips(&["10.128.0.20"]), selectors(&[PROD, "tag:app"]));
    let app = End { addresses: &app_ip, groups: &app_sel };
    let deny = |priority: u32, ports: &str| {
        firewall(
            "deny-db",
            json!({"priority": priority, "sourceRanges": ["10.128.0.0/20"],
                   "denied": [{"IPProtocol": "tcp", "ports": [ports]}]}),
        )
    };
    // A deny before the allow, covering everything it allows: unreachable.
    let r = gcp_rules(&[allow_db(), deny(900, "0-65535")]);
    assert!(allow_db_services(app, db, &r).is_empty());
    assert_eq!(admits(app, db, 6, 5432, &r), Some(false));
    // At equal priority the deny wins.
    let r = gcp_rules(&[allow_db(), deny(1000, "0-65535")]);
    assert!(allow_db_services(app, db, &r).is_empty());
    // After the allow: the allow decides.
    let r = gcp_rules(&[allow_db(), deny(1100, "0-65535")]);
    assert_eq!(allow_db_services(app, db, &r), vec!["TCP/5432", "TCP/8000-8080"]);
    // A deny of part of the range: the rest stays reachable.
    let r = gcp_rules(&[allow_db(), deny(900, "5432")]);
    assert_eq!(allow_db_services(app, db, &r), vec!["TCP/8000-8080"]);
    assert_eq!(admits(app, db, 6, 5432, &r), Some(false));
    assert_eq!(admits(app, db, 6, 8080, &r), Some(true));
    // A disabled deny decides nothing.
    let mut off = deny(900, "0-65535");
    off["disabled"] = json!(true);
    let r = gcp_rules(&[allow_db(), off]);
    assert_eq!(allow_db_services(app, db, &r), vec!["TCP/5432", "TCP/8000-8080"]);
    // An egress deny on the source's side (before the implied allow).
    let egress = firewall(
        "no-db-egress",
        json!({"direction": "EGRESS", "priority": 500, "destinationRanges": ["10.128.0.10/32"],
               "targetTags": ["app"], "denied": [{"IPProtocol": "tcp", "ports": ["5432"]}]}),
    );
    let r = gcp_rules(&[allow_db(), egress]);
    assert_eq!(allow_db_services(app, db, &r), vec!["TCP/8000-8080"]);
    assert_eq!(admits(app, db, 6, 5432, &r), Some(false));
    // Replacing and removing rules by resource.
    let mut r = gcp_rules(&[allow_db(), deny(900, "0-65535")]);
    let id = "//compute.googleapis.com/projects/shop/global/firewalls/deny-db";
    assert_eq!(r.upsert_firewall_rule(id, gcp_firewall(&deny(1100, "0-65535")).unwrap()), vec![PROD.to_owned()]);
    assert_eq!(allow_db_services(app, db, &r).len(), 2);
    assert_eq!(r.remove_firewall_rule(id).as_deref(), Some(PROD));
    assert_eq!(r.firewalls[PROD].rules().len(), 1);
}

fn allow_db_services(src: End<'_>, dst: End<'_>, r: &Rules) -> Vec<String> {
    allowed(src, dst, r).iter().map(|a| a.rule.service()).collect()
}

const SUB: &str = "/subscriptions/6a1f0c52-8f43-4d8e-9b1a-2f3c4d5e6f70/resourcegroups/pay/providers/microsoft.network";

fn nsg_id(name: &str) -> String {
    format!("{SUB}/networksecuritygroups/{name}")
}

fn asg_id(name: &str) -> String {
    format!("{SUB}/applicationsecuritygroups/{name}")
}

fn vnet_id(name: &str) -> String {
    format!("{SUB}/virtualnetworks/{name}")
}

/// An NSG's `properties` as ARM returns them (rules with their own ids and
/// `properties`); `defaultSecurityRules` left out (Azure's are added).
fn db_nsg(extra: Vec<Value>) -> Value {
    let rule = |name: &str, p: Value| {
        json!({"name": name, "id": format!("{}/securityRules/{name}", nsg_id("db-nsg")),
        "etag": "W/\"00000000-0000-0000-0000-000000000000\"", "type": "Microsoft.Network/networkSecurityGroups/securityRules",
        "properties": p})
    };
    let mut rules = vec![
        rule(
            "allow-app-5432",
            json!({"provisioningState": "Succeeded", "protocol": "Tcp", "sourcePortRange": "*",
            "destinationPortRange": "5432", "sourceApplicationSecurityGroups": [{"id": asg_id("app").replace("applicationsecuritygroups", "applicationSecurityGroups")}],
            "destinationApplicationSecurityGroups": [{"id": asg_id("db")}], "access": "Allow", "priority": 200,
            "direction": "Inbound", "sourcePortRanges": [], "destinationPortRanges": [], "sourceAddressPrefixes": [],
            "destinationAddressPrefixes": []}),
        ),
        rule(
            "deny-corp",
            json!({"protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
            "sourceAddressPrefix": "10.50.0.0/16", "destinationAddressPrefix": "*", "access": "Deny", "priority": 100,
            "direction": "Inbound"}),
        ),
    ];
    rules.extend(extra.into_iter().map(|p| rule(p["name"].as_str().unwrap_or("x"), p["properties"].clone())));
    json!({"provisioningState": "Succeeded", "resourceGuid": "8a0c7f1e-0000-4000-8000-000000000001", "securityRules": rules})
}

fn azure_rules(nsgs: &[(&str, Value)]) -> Rules {
    let mut r = Rules::default();
    for (name, props) in nsgs {
        assert!(r.apply(PolicyKind::NetworkSecurityGroup, &nsg_id(name), Some(props), false).is_some(), "{name} reads");
    }
    r
}

#[test]
fn an_azure_nsg_reads_with_azures_default_rules() {
    let rules = azure::azure_nsg(&nsg_id("db-nsg"), &db_nsg(vec![])).expect("reads");
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "allow-app-5432",
            "deny-corp",
            "AllowVnetInBound",
            "AllowAzureLoadBalancerInBound",
            "DenyAllInBound",
            "AllowVnetOutBound",
            "AllowInternetOutBound",
            "DenyAllOutBound"
        ]
    );
    assert_eq!(rules[0].label(), "NSG db-nsg rule allow-app-5432 (priority 200)");
    assert_eq!(rules[0].targets, vec![Peer::Group(asg_id("db"))]);
    assert_eq!(rules[0].services[0].peers, vec![Peer::Group(asg_id("app"))], "ids lower case, as NICs list them");
    assert_eq!(rules[0].services[0].service(), "TCP/5432");
    assert!(rules[1].deny && rules[1].targets.is_empty());
    let bad = |p: Value| azure::azure_nsg(&nsg_id("x"), &json!({"securityRules": [{"name": "r", "properties": p}]}));
    let e = bad(
        json!({"protocol": "Tcp", "destinationPortRange": "70000", "access": "Allow", "priority": 100, "direction": "Inbound"}),
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "securityRules[0].properties.destinationPortRange: '70000' is not a port or range"
    );
    let e = bad(json!({"protocol": "Tcp", "access": "Permit", "priority": 100, "direction": "Inbound"}));
    assert!(e.unwrap_err().to_string().starts_with("securityRules[0].properties.access:"));
    let e = bad(json!({"protocol": "Tcp", "access": "Allow", "priority": 100, "direction": "Inbound",
        "sourceAddressPrefix": "10.0.0/8"}));
    assert!(e.unwrap_err().to_string().contains("'10.0.0/8' is not a CIDR block"));
}

#[test]
fn azure_nsgs_decide_by_priority_with_application_security_groups_and_service_tags() {
    let r = azure_rules(&[("db-nsg", db_nsg(vec![]))]);
    let (db_ip, db_groups) = (ips(&["10.1.0.4"]), vec![nsg_id("db-nsg"), asg_id("db"), vnet_id("pay-vnet")]);
    let db = End { addresses: &db_ip, groups: &db_groups };
    let (app_ip, app_groups) = (ips(&["10.1.0.5"]), vec![asg_id("app"), vnet_id("pay-vnet")]);
    let app = End { addresses: &app_ip, groups: &app_groups };
    let mut a: Vec<String> = allowed(app, db, &r).iter().map(Allowed::describe).collect();
    a.sort();
    let asg = asg_id("app");
    assert_eq!(
        a,
        vec![
            "NSG db-nsg rule AllowVnetInBound (priority 65000) admits all traffic from service tag VirtualNetwork"
                .into(),
            format!("NSG db-nsg rule allow-app-5432 (priority 200) admits TCP/5432 from {asg}"),
        ],
        "Azure's default lets the whole virtual network in"
    );
    assert_eq!(admits(app, db, 6, 22, &r), Some(true));
    // Denied first by address, though in the same virtual network.
    let (corp_ip, corp_groups) = (ips(&["10.50.1.1"]), vec![asg_id("app"), vnet_id("pay-vnet")]);
    let corp = End { addresses: &corp_ip, groups: &corp_groups };
    assert!(allowed(corp, db, &r).is_empty());
    assert_eq!(admits(corp, db, 6, 5432, &r), Some(false));
    // Another virtual network, the internet: the default deny.
    let (other_ip, other_groups) = (ips(&["10.1.0.9"]), vec![vnet_id("other-vnet")]);
    assert!(allowed(End { addresses: &other_ip, groups: &other_groups }, db, &r).is_empty());
    let (net_ip, none) = (ips(&["203.0.113.9"]), Vec::<String>::new());
    assert_eq!(admits(End { addresses: &net_ip, groups: &none }, db, 6, 443, &r), Some(false));

    // The virtual network shut out before Azure's default: only the ASG rule.
    let deny_vnet = json!({"name": "deny-vnet", "properties": {"protocol": "*", "sourcePortRange": "*",
        "destinationPortRange": "*", "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": "VirtualNetwork",
        "access": "Deny", "priority": 4000, "direction": "Inbound"}});
    let r = azure_rules(&[("db-nsg", db_nsg(vec![deny_vnet]))]);
    assert_eq!(allowed(app, db, &r).iter().map(|a| a.rule.service()).collect::<Vec<_>>(), vec!["TCP/5432"]);
    assert_eq!(admits(app, db, 6, 22, &r), Some(false));
    assert_eq!(admits(app, db, 6, 5432, &r), Some(true));

    // The source's own NSG denies it outbound first.
    let app_out = json!({"securityRules": [{"name": "no-db", "properties": {"protocol": "Tcp", "sourcePortRange": "*",
        "destinationPortRange": "5432", "sourceAddressPrefix": "*", "destinationAddressPrefixes": ["10.1.0.0/24"],
        "access": "Deny", "priority": 100, "direction": "Outbound"}}]});
    let r = azure_rules(&[("db-nsg", db_nsg(vec![])), ("app-nsg", app_out)]);
    let app_groups = vec![nsg_id("app-nsg"), asg_id("app"), vnet_id("pay-vnet")];
    let app = End { addresses: &app_ip, groups: &app_groups };
    assert_eq!(admits(app, db, 6, 5432, &r), Some(false));
    assert_eq!(admits(app, db, 6, 22, &r), Some(true), "the default still lets the rest out and in");
    // An NSG not in the inventory: nothing can be said.
    let unknown = vec![nsg_id("missing"), vnet_id("pay-vnet")];
    assert_eq!(admits(app, End { addresses: &db_ip, groups: &unknown }, 6, 5432, &r), None);
}

/// An `AWS::EC2::NetworkAcl` configuration as AWS Config records it.
fn db_acl(entries: Vec<Value>) -> Value {
    let mut all = entries;
    all.extend([
        json!({"ruleNumber": 200, "protocol": "-1", "ruleAction": "allow", "egress": false, "cidrBlock": "10.0.0.0/16"}),
        json!({"ruleNumber": 32767, "protocol": "-1", "ruleAction": "deny", "egress": false, "cidrBlock": "0.0.0.0/0"}),
        json!({"ruleNumber": 100, "protocol": "-1", "ruleAction": "allow", "egress": true, "cidrBlock": "0.0.0.0/0"}),
        json!({"ruleNumber": 32767, "protocol": "-1", "ruleAction": "deny", "egress": true, "cidrBlock": "0.0.0.0/0"}),
    ]);
    json!({"associations": [{"networkAclAssociationId": "aclassoc-0db", "networkAclId": "acl-0db", "subnetId": "subnet-db"}],
           "entries": all, "isDefault": false, "networkAclId": "acl-0db", "tags": [], "vpcId": "vpc-1",
           "ownerId": "123456789012"})
}

fn deny_app_5432() -> Value {
    json!({"ruleNumber": 100, "protocol": "6", "ruleAction": "deny", "egress": false, "cidrBlock": "10.0.1.0/24",
           "portRange": {"from": 5432, "to": 5432}})
}

#[test]
fn a_network_acl_reads_with_its_star_rules_and_subnets() {
    let acl = nacl::aws_network_acl("acl-0db", &db_acl(vec![deny_app_5432()])).expect("reads");
    assert_eq!(acl.subnets, vec!["subnet-db"]);
    let names: Vec<&str> = acl.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["in 100", "in 200", "in *", "out 100", "out *"]);
    assert_eq!(acl.rules[0].services[0].service(), "TCP/5432");
    // Without the `*` rules in the item they are added (IPv4 and IPv6).
    let bare = json!({"networkAclId": "acl-1", "entries": []});
    assert_eq!(nacl::aws_network_acl("acl-1", &bare).unwrap().rules.len(), 4);
    let bad = json!({"entries": [{"ruleNumber": 1, "protocol": "6", "ruleAction": "maybe", "egress": false, "cidrBlock": "10.0.0.0/8"}]});
    assert!(nacl::aws_network_acl("acl-1", &bad).unwrap_err().to_string().starts_with("entries[0].ruleAction:"));
}

#[test]
fn a_network_acl_filters_what_security_groups_allow_across_subnets() {
    let mut r = rules();
    r.apply(PolicyKind::NetworkAcl, "acl-0db", Some(&db_acl(vec![deny_app_5432()])), false).expect("reads");
    fn groups(r: &Rules, sg: &str, subnet: &str) -> Vec<String> {
        let mut g = vec![sg.to_owned()];
        r.subnet_layers(Some(subnet), &mut g);
        g
    }
    let (db_ip, db_groups) = (ips(&["10.0.2.10"]), groups(&r, "sg-0cde", "subnet-db"));
    let db = End { addresses: &db_ip, groups: &db_groups };
    assert!(db_groups.contains(&"acl-0db".to_owned()));
    // sg-0cde admits sg-0app on 5432; the database subnet's ACL denies
    // 10.0.1.0/24 first.
    let (app_ip, app_groups) = (ips(&["10.0.1.5"]), groups(&r, "sg-0app", "subnet-app"));
    let app = End { addresses: &app_ip, groups: &app_groups };
    assert!(allowed(app, db, &r).is_empty());
    assert_eq!(admits(app, db, 6, 5432, &r), Some(false));
    // In the database's own subnet no ACL applies.
    let (peer_ip, peer_groups) = (ips(&["10.0.1.6"]), groups(&r, "sg-0app", "subnet-db"));
    let peer = End { addresses: &peer_ip, groups: &peer_groups };
    assert_eq!(allowed(peer, db, &r).len(), 1);
    assert_eq!(admits(peer, db, 6, 5432, &r), Some(true));
    // A rule before the deny lets one address through.
    let allow_one = json!({"ruleNumber": 90, "protocol": "6", "ruleAction": "allow", "egress": false,
        "cidrBlock": "10.0.1.5/32", "portRange": {"from": 5432, "to": 5432}});
    r.apply(PolicyKind::NetworkAcl, "acl-0db", Some(&db_acl(vec![deny_app_5432(), allow_one])), false);
    let a: Vec<String> = allowed(app, db, &r).iter().map(Allowed::describe).collect();
    assert_eq!(a, vec!["sg-0cde admits TCP/5432 from sg-0app"]);
    // The source subnet's ACL lets nothing out.
    let closed = json!({"networkAclId": "acl-0app", "entries": [],
        "associations": [{"networkAclId": "acl-0app", "subnetId": "subnet-app"}]});
    r.apply(PolicyKind::NetworkAcl, "acl-0app", Some(&closed), false);
    let app_groups = groups(&r, "sg-0app", "subnet-app");
    let app = End { addresses: &app_ip, groups: &app_groups };
    assert!(allowed(app, db, &r).is_empty());
    // Deleted: the subnet has no known ACL any more.
    r.apply(PolicyKind::NetworkAcl, "acl-0app", None, true);
    let app_groups = groups(&r, "sg-0app", "subnet-app");
    assert_eq!(app_groups, vec!["sg-0app"]);
}
