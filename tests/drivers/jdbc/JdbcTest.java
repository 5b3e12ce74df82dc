// PgJDBC through sluice in transaction mode.
//
// Server-side prepared statements (prepareThreshold 1, so every statement is
// a named one), batches, transactions, errors, notices, COPY both ways,
// cursor fetches (Execute with a row limit) and a table whose columns change
// under a cached statement. Connection from PGHOST, PGPORT, PGUSER,
// PGPASSWORD, PGDATABASE. Prints "ok NAME" or "FAIL NAME: why" per check;
// exit status 1 if any failed.
//
// Run: java -cp /usr/share/java/postgresql.jar tests/drivers/jdbc/JdbcTest.java

import java.io.StringReader;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.SQLWarning;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class JdbcTest {
    interface Body {
        void run() throws Exception;
    }

    static int failed = 0;

    static void check(String name, Body body) {
        long t0 = System.nanoTime();
        try {
            body.run();
            System.out.printf("ok %s (%.1fs)%n", name, (System.nanoTime() - t0) / 1e9);
        } catch (Throwable e) {
            failed++;
            StringWriter sw = new StringWriter();
            e.printStackTrace(new java.io.PrintWriter(sw));
            System.out.println("FAIL " + name + ": " + sw.toString().replace('\n', ' '));
        }
        System.out.flush();
    }

    static void expect(boolean cond, String what) {
        if (!cond)
            throw new AssertionError(what);
    }

    static Connection connect() throws SQLException {
        return connect("1");
    }

    static Connection connect(String prepareThreshold) throws SQLException {
        String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT")
                + "/" + System.getenv("PGDATABASE");
        Properties p = new Properties();
        p.setProperty("user", System.getenv("PGUSER"));
        p.setProperty("password", System.getenv("PGPASSWORD"));
        p.setProperty("sslmode", "disable");
        p.setProperty("prepareThreshold", prepareThreshold);
        p.setProperty("connectTimeout", "10");
        return DriverManager.getConnection(url, p);
    }

    public static void main(String[] args) throws Exception {
        check("prepared statements reused across transactions", () -> {
            try (Connection c = connect();
                 PreparedStatement ps = c.prepareStatement("SELECT ?::int + 1, pg_backend_pid()")) {
                for (int i = 0; i < 200; i++) {
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        expect(rs.next() && rs.getInt(1) == i + 1, "wrong answer at " + i);
                    }
                }
            }
        });

        check("many clients, more than servers, same statements", () -> {
            List<Thread> ts = new ArrayList<>();
            ConcurrentHashMap<Integer, Boolean> pids = new ConcurrentHashMap<>();
            List<Throwable> errs = java.util.Collections.synchronizedList(new ArrayList<>());
            for (int t = 0; t < 12; t++) {
                final int n = t;
                Thread th = new Thread(() -> {
                    try (Connection c = connect();
                         PreparedStatement ps = c.prepareStatement(
                                 "SELECT ?::int * 2, pg_backend_pid()")) {
                        for (int i = 0; i < 100; i++) {
                            ps.setInt(1, n * 1000 + i);
                            try (ResultSet rs = ps.executeQuery()) {
                                if (!rs.next() || rs.getInt(1) != 2 * (n * 1000 + i))
                                    throw new AssertionError("wrong answer");
                                pids.put(rs.getInt(2), true);
                            }
                        }
                    } catch (Throwable e) {
                        errs.add(e);
                    }
                });
                ts.add(th);
                th.start();
            }
            for (Thread th : ts)
                th.join(60000);
            expect(errs.isEmpty(), "client errors: " + errs);
            expect(pids.size() > 1, "all 12 clients ran on one server");
        });

        check("transactions, batches, rollback", () -> {
            try (Connection c = connect()) {
                try (Statement st = c.createStatement()) {
                    st.execute("DROP TABLE IF EXISTS jdbc_t");
                    st.execute("CREATE TABLE jdbc_t (id int PRIMARY KEY, v text)");
                }
                c.setAutoCommit(false);
                try (PreparedStatement ps = c.prepareStatement("INSERT INTO jdbc_t VALUES (?, ?)")) {
                    for (int i = 0; i < 500; i++) {
                        ps.setInt(1, i);
                        ps.setString(2, "row " + i);
                        ps.addBatch();
                    }
                    int[] counts = ps.executeBatch();
                    expect(counts.length == 500, "batch counts " + counts.length);
                }
                c.commit();
                try (PreparedStatement ps = c.prepareStatement("INSERT INTO jdbc_t VALUES (?, 'x')")) {
                    ps.setInt(1, 1000);
                    ps.executeUpdate();
                }
                c.rollback();
                c.setAutoCommit(true);
                try (Statement st = c.createStatement();
                     ResultSet rs = st.executeQuery("SELECT count(*), sum(id) FROM jdbc_t")) {
                    expect(rs.next() && rs.getInt(1) == 500 && rs.getLong(2) == 124750,
                           "after commit and rollback: " + rs.getInt(1));
                }
            }
        });

        check("errors leave the connection usable", () -> {
            try (Connection c = connect()) {
                try (PreparedStatement ps = c.prepareStatement("SELECT * FROM jdbc_no_such_table")) {
                    ps.executeQuery();
                    throw new AssertionError("no error");
                } catch (SQLException e) {
                    expect("42P01".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState());
                }
                c.setAutoCommit(false);
                try (Statement st = c.createStatement()) {
                    st.executeQuery("SELECT 1/0");
                    throw new AssertionError("no error");
                } catch (SQLException e) {
                    expect("22012".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState());
                }
                c.rollback();
                c.setAutoCommit(true);
                try (PreparedStatement ps = c.prepareStatement("SELECT ?::text")) {
                    ps.setString(1, "still here");
                    try (ResultSet rs = ps.executeQuery()) {
                        expect(rs.next() && rs.getString(1).equals("still here"), "after errors");
                    }
                }
            }
        });

        check("notices", () -> {
            try (Connection c = connect(); Statement st = c.createStatement()) {
                st.execute("DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$");
                SQLWarning w = st.getWarnings();
                expect(w != null && w.getMessage().contains("hello from plpgsql"), "warning " + w);
            }
        });

        check("copy in and out", () -> {
            try (Connection c = connect()) {
                try (Statement st = c.createStatement()) {
                    st.execute("DROP TABLE IF EXISTS jdbc_copy");
                    st.execute("CREATE TABLE jdbc_copy (id int, name text)");
                }
                CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
                StringBuilder sb = new StringBuilder();
                for (int i = 1; i <= 10000; i++)
                    sb.append(i).append("\tname ").append(i).append('\n');
                long n = cm.copyIn("COPY jdbc_copy FROM STDIN", new StringReader(sb.toString()));
                expect(n == 10000, "copied in " + n);
                StringWriter out = new StringWriter();
                long m = cm.copyOut("COPY jdbc_copy TO STDOUT", out);
                expect(m == 10000 && out.toString().equals(sb.toString()), "copied out " + m);
                try (Statement st = c.createStatement()) {
                    st.execute("DROP TABLE jdbc_copy");
                }
            }
        });

        check("cursor fetch in a transaction (portal row limits)", () -> {
            try (Connection c = connect()) {
                c.setAutoCommit(false);
                try (PreparedStatement ps = c.prepareStatement(
                        "SELECT g, repeat('y', 100) FROM generate_series(1, ?) g")) {
                    ps.setFetchSize(100);
                    ps.setInt(1, 50000);
                    long sum = 0, rows = 0;
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            sum += rs.getInt(1);
                            rows++;
                        }
                    }
                    expect(rows == 50000 && sum == 50000L * 50001 / 2, "rows " + rows);
                }
                c.commit();
            }
        });

        for (String threshold : new String[] {"1", "5"})
            check("a table changes under a cached statement, prepareThreshold " + threshold,
                  () -> tableChanges(threshold));

        System.exit(failed == 0 ? 0 : 1);
    }

    // PgJDBC keeps the row description of a server-prepared statement and
    // heals "cached plan must not change result type" by preparing again.
    static void tableChanges(String threshold) throws Exception {
        try (Connection c = connect(threshold)) {
            try (Statement st = c.createStatement()) {
                st.execute("DROP TABLE IF EXISTS jdbc_ddl");
                st.execute("CREATE TABLE jdbc_ddl (a int)");
                st.execute("INSERT INTO jdbc_ddl VALUES (1)");
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT * FROM jdbc_ddl")) {
                for (int i = 0; i < 8; i++)
                    try (ResultSet rs = ps.executeQuery()) {
                        expect(rs.next() && rs.getInt(1) == 1, "before DDL");
                    }
                try (Statement st = c.createStatement()) {
                    st.execute("ALTER TABLE jdbc_ddl ADD COLUMN b text DEFAULT 'new'");
                }
                try (ResultSet rs = ps.executeQuery()) {
                    expect(rs.next() && rs.getMetaData().getColumnCount() == 2
                           && "new".equals(rs.getString(2)), "after DDL");
                }
            }
            try (Statement st = c.createStatement()) {
                st.execute("DROP TABLE jdbc_ddl");
            }
        }
    }
}
