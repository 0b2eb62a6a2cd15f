#Requires -Version 5.1
<#
.SYNOPSIS
    Writes a live kernel memory dump of the running VM (no crash, no reboot), or finds the one Task Manager wrote.

.DESCRIPTION
    Does what the seed does in Task Manager from the command line, on Windows 10 too:

        Get-StorageDiagnosticInfo -InputObject <Get-StorageSubSystem> -IncludeLiveDump -DestinationPath <folder>

    The dump lands under <folder>\localhost\; only the dump is collected unless -IncludeLogs.
    The subsystem is passed as an object, never matched by its translated name. With
    -FromTaskManager it changes nothing and returns the newest .dmp in Task Manager's
    LiveKernelDumps folder. A live dump may be partial: docs\windows.md, section 5.

.PARAMETER DestinationPath
    Folder for the dump. Default: C:\Dumps\TestDriver-<yyyyMMdd-HHmmss>. Must not exist yet or be empty.

.PARAMETER StorageSubSystemFriendlyName
    Storage subsystem to ask, by its FriendlyName as Get-StorageSubSystem prints it.
    Default: the only subsystem there is.

.PARAMETER IncludeLogs
    Also collect the storage operational and diagnostic logs.

.PARAMETER FromTaskManager
    Do not create a dump: return the newest dump Task Manager wrote.

.EXAMPLE
    PS C:\> .\scripts\New-LiveKernelDump.ps1
    Writes C:\Dumps\TestDriver-20231125-043101\localhost\LiveDump.dmp (for example) and returns its path.

.EXAMPLE
    PS C:\> .\scripts\New-LiveKernelDump.ps1 | .\scripts\Invoke-DumpAnalysis.ps1

.EXAMPLE
    PS C:\> .\scripts\New-LiveKernelDump.ps1 -FromTaskManager | .\scripts\Invoke-DumpAnalysis.ps1
    Analyses the dump made in Task Manager, as in the seed.
#>
[CmdletBinding(SupportsShouldProcess, DefaultParameterSetName = 'Storage')]
[OutputType([string])]
param(
    [Parameter(ParameterSetName = 'Storage')]
    [string]$DestinationPath = (Join-Path -Path 'C:\Dumps' -ChildPath ('TestDriver-' + (Get-Date -Format 'yyyyMMdd-HHmmss'))),

    [Parameter(ParameterSetName = 'Storage')]
    [string]$StorageSubSystemFriendlyName,

    [Parameter(ParameterSetName = 'Storage')]
    [switch]$IncludeLogs,

    [Parameter(ParameterSetName = 'TaskManager', Mandatory)]
    [switch]$FromTaskManager
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

Import-Module -Name (Join-Path $PSScriptRoot 'TestDriver.Common.psm1') -Force

# The newest .dmp under Folder, shown with the next step; throws NotFound when there is none.
function Select-NewestDump {
    param([string]$Folder, [string]$NotFound)
    $file = Get-ChildItem -LiteralPath $Folder -Filter '*.dmp' -File -Recurse |
        Sort-Object -Property LastWriteTime -Descending | Select-Object -First 1
    if (-not $file) {
        throw $NotFound
    }
    $mb = [math]::Round($file.Length / 1048576, 1)
    Write-Host "Dump: $($file.FullName) ($mb MB, written $($file.LastWriteTime))"
    Write-Host "Next: .\scripts\Invoke-DumpAnalysis.ps1 -DumpPath '$($file.FullName)'"
    return $file.FullName
}

Assert-Administrator

if ($FromTaskManager) {
    $folder = Join-Path -Path $env:LOCALAPPDATA -ChildPath 'Microsoft\Windows\TaskManager\LiveKernelDumps'
    if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
        throw ("$folder does not exist: no live kernel dump was made with Task Manager by this user. " +
            'Start Task Manager as administrator (Microsoft: it must run as an Administrator level user), then ' +
            'Details > right-click System > Create live kernel memory dump file > Full live kernel memory dump.')
    }
    return Select-NewestDump -Folder $folder -NotFound "No .dmp file in $folder."
}

if (-not (Get-Command -Name Get-StorageDiagnosticInfo -ErrorAction SilentlyContinue)) {
    throw ('Get-StorageDiagnosticInfo (Storage module) is not available on this Windows. ' +
        'Use Task Manager instead and then -FromTaskManager.')
}

if ($StorageSubSystemFriendlyName) {
    $subsystem = @(Get-StorageSubSystem -FriendlyName $StorageSubSystemFriendlyName)
    if ($subsystem.Count -ne 1) {
        throw "Get-StorageSubSystem -FriendlyName '$StorageSubSystemFriendlyName' found $($subsystem.Count) subsystem(s), not one."
    }
    $subsystem = $subsystem[0]
}
else {
    $all = @(Get-StorageSubSystem)
    if ($all.Count -ne 1) {
        $names = ($all | ForEach-Object { "'$($_.FriendlyName)'" }) -join ', '
        throw ("Get-StorageSubSystem lists $($all.Count) storage subsystem(s) ($names): " +
            'pass the one to use with -StorageSubSystemFriendlyName.')
    }
    $subsystem = $all[0]
}
Write-Host "Storage subsystem: $($subsystem.FriendlyName)"

if (Test-Path -LiteralPath $DestinationPath) {
    if (@(Get-ChildItem -LiteralPath $DestinationPath -Force).Count -gt 0) {
        throw "$DestinationPath exists and is not empty: choose a new -DestinationPath."
    }
}

$arguments = @{
    InputObject     = $subsystem
    IncludeLiveDump = $true
    DestinationPath = $DestinationPath
}
if (-not $IncludeLogs) {
    $arguments['ExcludeOperationalLog'] = $true
    $arguments['ExcludeDiagnosticLog'] = $true
}

if (-not $PSCmdlet.ShouldProcess($DestinationPath, 'Get-StorageDiagnosticInfo -IncludeLiveDump (live kernel memory dump)')) {
    return
}
if (-not (Test-Path -LiteralPath $DestinationPath)) {
    New-Item -ItemType Directory -Path $DestinationPath | Out-Null
}
Write-Host 'Writing the live kernel dump; this takes a while and needs free memory ...'
Get-StorageDiagnosticInfo @arguments | Out-Null

return Select-NewestDump -Folder $DestinationPath -NotFound ("Get-StorageDiagnosticInfo finished but wrote no .dmp " +
    "under $DestinationPath. Live dumps are throttled and need free memory: wait a few minutes and retry, or use Task Manager.")
