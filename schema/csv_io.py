"""GraphQL API of CSV exports and imports (导入导出).

The client reads the file and sends its text (`content`) or its raw bytes in
base64 (`contentBase64`, for GBK files saved by Excel); exports come back as
text starting with a byte order mark, ready to be saved as a .csv file.
"""

from __future__ import annotations

import strawberry

from meihua.resolvers import exports, imports
from meihua.resolvers.csv_io import RowError
from meihua.schema.contacts import ContactFilter
from meihua.schema.context import Info
from meihua.schema.customers import CustomerFilter
from meihua.schema.leads import LeadFilter


@strawberry.type(description="A CSV file to save; `content` starts with a UTF-8 BOM for Excel.")
class CsvExport:
    filename: str
    content: str
    row_count: int

    @classmethod
    def of(cls, file: exports.CsvFile) -> CsvExport:
        return cls(filename=file.filename, content=file.content, row_count=file.row_count)


@strawberry.type(description="A row that was not imported, and why.")
class ImportRowError:
    line: int = strawberry.field(description="Line of the file; the header is line 1.")
    field: str | None
    code: str = strawberry.field(description="BAD_USER_INPUT or DUPLICATE.")
    message: str

    @classmethod
    def of(cls, error: RowError) -> ImportRowError:
        return cls(line=error.line, field=error.field, code=error.code, message=error.message)


@strawberry.type(description="What an import did, or would do on a dry run.")
class ImportReport:
    dry_run: bool
    total: int = strawberry.field(description="Data rows in the file.")
    imported: int = strawberry.field(description="Rows imported (or importable on a dry run).")
    errors: list[ImportRowError]

    @classmethod
    def of(cls, report: imports.ImportReport) -> ImportReport:
        return cls(
            dry_run=report.dry_run,
            total=report.total,
            imported=report.imported,
            errors=[ImportRowError.of(error) for error in report.errors],
        )


@strawberry.type
class CsvQuery:
    @strawberry.field(description="The customers the list would show, as CSV.")
    async def export_customers(self, info: Info, filter: CustomerFilter | None = None) -> CsvExport:
        viewer = info.context.viewer
        file = await exports.export_customers(viewer, (filter or CustomerFilter()).domain())
        return CsvExport.of(file)

    @strawberry.field(description="The leads the list would show, as CSV.")
    async def export_leads(self, info: Info, filter: LeadFilter | None = None) -> CsvExport:
        viewer = info.context.viewer
        file = await exports.export_leads(viewer, (filter or LeadFilter()).domain())
        return CsvExport.of(file)

    @strawberry.field(description="The contacts the list would show, as CSV.")
    async def export_contacts(self, info: Info, filter: ContactFilter | None = None) -> CsvExport:
        viewer = info.context.viewer
        file = await exports.export_contacts(viewer, (filter or ContactFilter()).domain())
        return CsvExport.of(file)


_IMPORT = (
    "Send the file as `content` (text) or `contentBase64` (UTF-8 or GBK bytes); "
    "bad rows are reported and skipped, a dry run writes nothing."
)


@strawberry.type
class CsvMutation:
    @strawberry.mutation(description=f"Import customers; the first in owns. {_IMPORT}")
    async def import_customers(
        self,
        info: Info,
        content: str | None = None,
        content_base64: str | None = None,
        dry_run: bool = False,
    ) -> ImportReport:
        viewer = info.context.viewer
        report = await imports.import_customers(viewer, content, content_base64, dry_run)
        return ImportReport.of(report)

    @strawberry.mutation(description=f"Import leads. {_IMPORT}")
    async def import_leads(
        self,
        info: Info,
        content: str | None = None,
        content_base64: str | None = None,
        dry_run: bool = False,
    ) -> ImportReport:
        viewer = info.context.viewer
        report = await imports.import_leads(viewer, content, content_base64, dry_run)
        return ImportReport.of(report)

    @strawberry.mutation(
        description=f"Import contacts of customers named in the `customer` column. {_IMPORT}"
    )
    async def import_contacts(
        self,
        info: Info,
        content: str | None = None,
        content_base64: str | None = None,
        dry_run: bool = False,
    ) -> ImportReport:
        viewer = info.context.viewer
        report = await imports.import_contacts(viewer, content, content_base64, dry_run)
        return ImportReport.of(report)
