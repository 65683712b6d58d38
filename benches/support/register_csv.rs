//! The register benches' 50,000 residents as an import CSV (`benches/register.rs`,
//! `benches/site_catchup.rs`): each with a valid ID number, an address, a
//! phone and a card; every third with a plate.

pub const PEOPLE: u32 = 50_000;

pub fn id_number(i: u32) -> String {
    let birth = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap()
        + chrono::Duration::days(i64::from(i / 1000));
    let body = format!("510105{}{:03}", birth.format("%Y%m%d"), i % 1000);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(weights)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

/// 50,000 residents, each with an address, a phone and a card; every third with a plate.
pub fn csv() -> Vec<u8> {
    let mut s =
        String::from("name,id_number,phone,building,unit,room,role,valid_until,card,plate\n");
    for i in 0..PEOPLE {
        let plate = if i % 3 == 0 {
            format!("川A{:05}", i)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "张伟,{},139{:08},{},{},{},{},{},1:{},{}\n",
            id_number(i),
            i,
            1 + i % 30,
            1 + i % 4,
            101 + i % 2000,
            ["owner", "family", "tenant"][(i % 3) as usize],
            if i % 3 == 2 { "2027-06-30" } else { "" },
            i,
            plate
        ));
    }
    s.into_bytes()
}
