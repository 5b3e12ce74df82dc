// PgJDBC's own extra_float_digits through sluice in transaction mode
// (tests/integration/test_efd.py drives it).
//
// Connects as PgJDBC does by default (no assumeMinServerVersion: it sends
// "SET extra_float_digits = 3" itself after login), prints "connected N"
// with the value it sees, then for each "probe" line on stdin prints the
// server pid and the value of its next transaction. Connection from PGHOST,
// PGPORT, PGUSER, PGPASSWORD, PGDATABASE.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;

public class Efd {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT")
                + "/" + System.getenv("PGDATABASE");
        Properties p = new Properties();
        p.setProperty("user", System.getenv("PGUSER"));
        p.setProperty("password", System.getenv("PGPASSWORD"));
        try (Connection c = DriverManager.getConnection(url, p)) {
            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("SHOW extra_float_digits")) {
                rs.next();
                System.out.println("connected " + rs.getString(1));
            }
            System.out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            String line;
            while ((line = in.readLine()) != null && line.equals("probe")) {
                try (Statement st = c.createStatement();
                     ResultSet rs = st.executeQuery(
                             "SELECT pg_backend_pid(), current_setting('extra_float_digits')")) {
                    rs.next();
                    System.out.println(rs.getInt(1) + " " + rs.getString(2));
                }
                System.out.flush();
            }
        }
    }
}
